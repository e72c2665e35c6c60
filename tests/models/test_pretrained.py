"""Pretrained-backbone directories: a real orbax checkpoint on disk, read back exactly."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

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
