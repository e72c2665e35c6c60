"""Pretrained-backbone directories: a real orbax checkpoint on disk, read back exactly."""
import json

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from zsbir_jax.data import augment
from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained


def test_save_load_round_trip(tmp_path):
  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=7, source="unit-test")
  model = spec.model()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  pretrained.save(str(tmp_path / "backbone"), variables, spec)
  loaded, loaded_spec = pretrained.load(str(tmp_path / "backbone"))
  assert loaded_spec == spec
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.tree.map(np.asarray, variables))
  assert jax.tree.structure(loaded) == jax.tree.structure(variables)
  with pytest.raises(FileExistsError, match="refusing to overwrite"):
    pretrained.save(str(tmp_path / "backbone"), variables, spec)


def test_load_names_missing_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="no pretrained backbone at .*nothing"):
    pretrained.load(str(tmp_path / "nothing"))


def test_spec_records_each_familys_input_normalisation(tmp_path):
  lite = pretrained.BackboneSpec(family=backbones.EFFICIENTNET_LITE, variant=0, width=0.125,
                                 num_classes=3, source="unit-test")
  pretrained.save(str(tmp_path / "lite"), lite.model().init(jax.random.key(0),
                                                             jnp.zeros((1, 32, 32, 3))), lite)
  with open(tmp_path / "lite" / pretrained.SPEC_FILE) as f:
    record = json.load(f)
  assert record["family"] == "efficientnet_lite" and record["variant"] == 0
  assert record["input_mean"] == [127.0] * 3 and record["input_std"] == [128.0] * 3
  _, loaded = pretrained.load(str(tmp_path / "lite"))
  assert loaded == lite and loaded.model().feature_dim == 160
  pixels = np.array([[0, 127, 255]], np.uint8)[..., None].repeat(3, -1)
  np.testing.assert_allclose(loaded.normalize(pixels)[..., 0], [[-127 / 128, 0, 1]], rtol=1e-6)


def test_resnet_normalisation_is_imagenet_mean_std_also_for_older_records(tmp_path):
  """A backbone.json written before the family was recorded reads as a ResNet."""
  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=2, source="unit-test")
  pretrained.save(str(tmp_path / "r18"), spec.model().init(jax.random.key(0),
                                                            jnp.zeros((1, 32, 32, 3))), spec)
  with open(tmp_path / "r18" / pretrained.SPEC_FILE, "w") as f:
    json.dump({"depth": 18, "width": 0.125, "num_classes": 2, "source": "unit-test"}, f)
  _, loaded = pretrained.load(str(tmp_path / "r18"))
  assert loaded == spec and loaded.family == backbones.RESNET
  image = np.random.RandomState(0).randint(0, 256, (2, 5, 7, 3)).astype(np.uint8)
  np.testing.assert_allclose(loaded.normalize(image), augment.normalize(image), rtol=1e-5,
                             atol=1e-5)
  with pytest.raises(ValueError, match="unknown backbone family 'vit'"):
    pretrained.BackboneSpec(family="vit", num_classes=1, source="unit-test")
