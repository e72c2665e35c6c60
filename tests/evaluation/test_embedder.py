"""Embedding extraction by a restored run against direct per-item computation."""
import os

import jax
import numpy as np
import optax
import pytest

from experiments.configs import common
from zsbir_jax import inference
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder
from zsbir_jax.evaluation import embeddings
from zsbir_jax.models import retrieval
from zsbir_jax.training import checkpoint
from zsbir_jax.training import train_state

IMAGE_SIZE, STEP = 32, 7


def random_variables(model: retrieval.RetrievalModel, seed: int) -> dict:
  """{'params', 'batch_stats'} of `model` drawn in NumPy (fan-in scaled kernels, random BN
  statistics): far faster than `model.init` on the CPU, and no two items embed alike."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    elif "var" in name:
      value = rng.uniform(0.5, 2.0, leaf.shape)
    elif "scale" in name:
      value = 1.0 + 0.1 * rng.standard_normal(leaf.shape)
    else:  # biases and BN means
      value = 0.1 * rng.standard_normal(leaf.shape)
    return value.astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def make_workdir(workdir: str, seed: int = 0) -> None:
  """A training workdir as the launcher leaves it: model.json, config.json (the launcher's
  format) and a best checkpoint of a full TrainState, saved as the launcher saves it.

  The run frames sketches by their ink, so extraction must follow its config.json.
  """
  os.makedirs(workdir, exist_ok=True)
  model = retrieval.RetrievalModel(depth=18, width=0.125, embed_dim=16, num_seen_classes=6,
                                   num_teacher_classes=4)
  retrieval.save_spec(model, workdir, augment.IMAGENET_PIXEL_MEAN, augment.IMAGENET_PIXEL_STD)
  config = common.training_config(common.base_config())
  config.data.update(image_size=IMAGE_SIZE, crop_sketch_to_ink=True)
  with open(os.path.join(workdir, embedder.CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  variables = random_variables(model, seed)
  state = train_state.TrainState(
      step=np.int32(STEP), params=variables["params"], batch_stats=variables["batch_stats"],
      opt_state=optax.adam(1e-3).init(variables["params"]), teacher={}, frozen={})
  checkpoints = checkpoint.Checkpoints(workdir, keep=1)
  assert checkpoints.save_best(STEP, state, {"val_accuracy": 0.5})
  checkpoints.close()


def reference_embeddings(workdir: str, records) -> np.ndarray:
  """Item by item on one device: decode, frame per domain, resize, embed; (N, D) float64."""
  model = retrieval.load_spec(workdir)
  variables, _ = inference.load_model_variables(workdir)
  config = augment.AugmentConfig(size=IMAGE_SIZE, crop_sketch_to_ink=True)
  x = np.stack([augment.preprocess(images.load_rgb(r.path), r.domain, config) for r in records])
  e = np.asarray(model.apply(variables, x, method=retrieval.RetrievalModel.encode), np.float64)
  return e / np.linalg.norm(e, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("run"))
  make_workdir(path)
  return path


def test_extract_equals_per_item_embedding(workdir, tiny_synthetic):
  data = lists.load_split(tiny_synthetic, "synthetic")
  records = data.query + data.gallery[:5]  # 23 items: sketches and photos, last batch padded
  restored = embedder.load_embedder(workdir, "best")
  assert restored.identity == embeddings.ModelIdentity(
      workdir=os.path.abspath(workdir), which="best", step=STEP,
      spec={"family": "resnet", "depth": 18, "variant": 0, "width": 0.125, "embed_dim": 16,
            "num_seen_classes": 6,
            "num_teacher_classes": 4, "dtype": "float32", "remat": False,
            "input_mean": list(augment.IMAGENET_PIXEL_MEAN),
            "input_std": list(augment.IMAGENET_PIXEL_STD)},
      image_size=IMAGE_SIZE, crop_sketch_to_ink=True)
  z = embedder.extract(restored, source.RecordSource(records), batch_size=8,
                       mesh=sharding.make_mesh())
  assert z.shape == (23, 16) and z.dtype == np.float32
  np.testing.assert_allclose(z, reference_embeddings(workdir, records), atol=2e-6)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="batch size 6 is not a multiple of the 8 devices"):
    embedder.extract(restored, source.RecordSource(records), batch_size=6)


def test_load_embedder_needs_an_image_size(tmp_path):
  retrieval.save_spec(retrieval.RetrievalModel(depth=18), str(tmp_path), (0.0,) * 3, (1.0,) * 3)
  with pytest.raises(ValueError, match="no data.image_size in .*config.json"):
    embedder.load_embedder(str(tmp_path))
