"""The recipes with a tiny EfficientNet-Lite backbone, its input normalisation taken from the
backbone directory end to end (knowledge table, training record, embeddings of the trained run).

`full` trains every term (ce, eff and bkd use subsets of them); a recipe costs a compilation of
its own (tens of seconds here), so the others, and `sake`'s online per-photo teacher, are left to
the ResNet tests; `none` and `eff` with the real Lite0 run in
tests/experiments/test_run_sketchy_mini.py."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import pytest

from experiments.configs import synthetic as synthetic_config
from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder
from zsbir_jax.method import knowledge
from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained
from zsbir_jax.models import retrieval
from zsbir_jax.training import setup
from zsbir_jax.training import trainer

SIZE, WIDTH, TEACHER_CLASSES = 32, 0.125, 4


def lite_inputs(records) -> np.ndarray:
  """Evaluation inputs computed directly: PIL bilinear resize, then (x - 127) / 128."""
  return np.stack([
      (np.asarray(Image.fromarray(images.load_rgb(r.path)).resize(
          (SIZE, SIZE), Image.Resampling.BILINEAR), np.float32) - 127.0) / 128.0
      for r in records])


@pytest.fixture(scope="module")
def lite(tiny_synthetic, tmp_path_factory):
  """A random tiny EfficientNet-Lite0 'pretrained' directory and its knowledge table."""
  directory = tmp_path_factory.mktemp("lite")
  spec = pretrained.BackboneSpec(family=backbones.EFFICIENTNET_LITE, variant=0, width=WIDTH,
                                 num_classes=TEACHER_CLASSES, source="test-lite")
  variables = spec.model().init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  pretrained.save(str(directory / "backbone"), variables, spec)
  table = knowledge.prepare(source.open_split(ml_collections.ConfigDict(dict(
      source="files", root=tiny_synthetic, split="synthetic", tfds_data_dir=""))),
      str(directory / "backbone"), SIZE, batch_size=16, temperature=1.0)
  knowledge.save(str(directory / "knowledge.npz"), table)
  return {"root": tiny_synthetic, "backbone": str(directory / "backbone"),
          "knowledge": str(directory / "knowledge.npz"), "variables": variables, "spec": spec,
          "table": table}


def test_knowledge_uses_the_directorys_normalisation(lite):
  data = lists.load_split(lite["root"], "synthetic")
  photos = [r for r in data.train if r.domain == domains.PHOTO]
  _, logits = lite["spec"].model().apply(lite["variables"], lite_inputs(photos), with_logits=True)
  probs = np.asarray(jax.nn.softmax(np.asarray(logits, np.float64)))
  labels = np.array([r.label for r in photos])
  expected = np.stack([probs[labels == c].mean(0) for c in range(len(data.seen_classes))])
  np.testing.assert_allclose(lite["table"].targets, expected, rtol=1e-5, atol=1e-7)


def lite_config(lite, recipe):
  config = synthetic_config.get_config(f"recipe={recipe},runlocal")
  config.model.update(backbone=backbones.EFFICIENTNET_LITE, variant=0, width=WIDTH)
  config.data.root = lite["root"]
  config.init.update(backbone=lite["backbone"], knowledge=lite["knowledge"])
  config.train.update(log_every=1, checkpoint_every=100)
  config.evals.seen.every_epochs = 0  # not what these tests check (tests/training/test_trainer.py)
  return config


def test_the_full_recipe_trains_with_efficientnet_lite(lite, tmp_path):
  """Every term (class-wise skp, the EMA teacher's kd) with the Lite backbone; SAKE's online
  teacher is the ResNet tests' (tests/training/test_train_step.py), the same code."""
  state = trainer.train_and_evaluate(lite_config(lite, "full"), str(tmp_path))
  record = json.load(open(tmp_path / "model.json"))
  assert (record["family"], record["width"]) == (backbones.EFFICIENTNET_LITE, WIDTH)
  assert (record["input_mean"], record["input_std"]) == ([127.0] * 3, [128.0] * 3)
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  losses = [l for l in lines if "loss" in l]
  assert int(state.step) == len(losses) == 4
  assert {k[5:] for k in losses[-1] if k.startswith("loss_")} == {"cls", "quad", "skp", "kd",
                                                                   "da"}
  assert all(np.isfinite(l["loss"]) for l in losses)
  assert not np.allclose(state.params["backbone"]["conv_stem"]["kernel"],
                         lite["variables"]["params"]["conv_stem"]["kernel"])
  # The trained workdir embeds with (x - 127) / 128 without being told.
  data = lists.load_split(lite["root"], "synthetic")
  records = data.query[:6] + data.gallery[:6]
  restored = embedder.load_embedder(str(tmp_path), "latest")
  z = embedder.extract(restored, source.RecordSource(records), batch_size=8)
  e = restored.model.apply(restored.variables, lite_inputs(records),
                           method=retrieval.RetrievalModel.encode)
  e = np.asarray(e, np.float64)
  np.testing.assert_allclose(z, e / np.linalg.norm(e, axis=1, keepdims=True), atol=2e-6)


def test_config_and_backbone_directory_must_agree(lite):
  config = lite_config(lite, "ce")
  config.model.width = 0.25
  with pytest.raises(setup.ConfigError, match="is EfficientNet-Lite0 x0.125, the config asks "
                     "for EfficientNet-Lite0 x0.25"):
    setup.prepare(config)
  config.model.update(backbone=backbones.RESNET, width=WIDTH)
  with pytest.raises(setup.ConfigError, match="the config asks for ResNet-18 x0.125"):
    setup.prepare(config)
