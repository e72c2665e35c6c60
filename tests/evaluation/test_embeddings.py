"""Embedding extraction, storage and search against direct per-item computation and NumPy."""
import os

import jax
import numpy as np
import optax
import pytest

from experiments.configs import common
from zsbir_jax import domains
from zsbir_jax import inference
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.data import lists
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
  retrieval.save_spec(model, workdir)
  config = common.training_config(common.base_config())
  config.data.update(image_size=IMAGE_SIZE, crop_sketch_to_ink=True)
  with open(os.path.join(workdir, embeddings.CONFIG_FILE), "w") as f:
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
  embedder = embeddings.load_embedder(workdir, "best")
  assert embedder.identity == embeddings.ModelIdentity(
      workdir=os.path.abspath(workdir), which="best", step=STEP,
      spec={"depth": 18, "width": 0.125, "embed_dim": 16, "num_seen_classes": 6,
            "num_teacher_classes": 4, "dtype": "float32", "remat": False},
      image_size=IMAGE_SIZE, crop_sketch_to_ink=True)
  z = embeddings.extract(embedder, records, batch_size=8, mesh=sharding.make_mesh())
  assert z.shape == (23, 16) and z.dtype == np.float32
  np.testing.assert_allclose(z, reference_embeddings(workdir, records), atol=2e-6)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="batch size 6 is not a multiple of the 8 devices"):
    embeddings.extract(embedder, records, batch_size=6)


def test_load_embedder_needs_an_image_size(tmp_path):
  retrieval.save_spec(retrieval.RetrievalModel(depth=18), str(tmp_path))
  with pytest.raises(ValueError, match="no data.image_size in .*config.json"):
    embeddings.load_embedder(str(tmp_path))


def test_save_load_round_trip(tmp_path):
  identity = embeddings.ModelIdentity(workdir="/runs/a b", which="latest", step=3,
                                      spec={"depth": 50, "embed_dim": 4}, image_size=224,
                                      crop_sketch_to_ink=False)
  records = [lists.Record("/d/alarm clock/ü 1.png", 1, domains.SKETCH),
             lists.Record("/d/cup/2.jpg", 0, domains.PHOTO),
             lists.Record("/d/cup/3.JPEG", 0, domains.PHOTO)]
  z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
  stored = embeddings.from_records(records, z, ("cup", "alarm clock"), "tuberlin30", identity)
  path = str(tmp_path / "set.npz")
  embeddings.save(path, stored)
  loaded = embeddings.load(path)
  np.testing.assert_array_equal(loaded.embeddings, z)
  assert loaded.paths == tuple(r.path for r in records)
  np.testing.assert_array_equal(loaded.labels, [1, 0, 0])
  np.testing.assert_array_equal(loaded.domains, [domains.SKETCH, domains.PHOTO, domains.PHOTO])
  assert (loaded.class_names, loaded.split, loaded.model) == (
      ("cup", "alarm clock"), "tuberlin30", identity)
  assert len(loaded) == 3
  np.savez(str(tmp_path / "other.npz"), embeddings=z)
  with pytest.raises(ValueError, match=r"other.npz is not an embeddings file: missing \['domains'"):
    embeddings.load(str(tmp_path / "other.npz"))


def test_nearest_is_the_stable_similarity_ranking():
  # Small-integer vectors: every dot product is exact in float32 and ties are everywhere.
  rng = np.random.default_rng(1)
  gallery = rng.integers(-2, 3, (40, 6)).astype(np.float32)
  query = rng.integers(-2, 3, (7, 6)).astype(np.float32)
  top, scores = embeddings.nearest(query, gallery, k=12, block_size=3)
  similarity = query.astype(np.int64) @ gallery.astype(np.int64).T
  assert len(np.unique(similarity[0])) < 20  # ties decide the order
  for q in range(len(query)):
    expected = sorted(range(40), key=lambda j: (-similarity[q, j], j))[:12]
    np.testing.assert_array_equal(top[q], expected)
    np.testing.assert_array_equal(scores[q], similarity[q, expected])
  top, scores = embeddings.nearest(query[:1], gallery, k=100)
  assert top.shape == scores.shape == (1, 40)
