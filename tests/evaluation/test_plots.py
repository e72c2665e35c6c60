"""Plots: valid PNG files of the expected pixel size, from image paths and arrays."""
import numpy as np
from PIL import Image
import pytest

from zsbir_jax.evaluation import metrics, plots


def sketch(seed: int) -> np.ndarray:
  """A (64, 64) uint8 line drawing: black strokes on white."""
  rng = np.random.default_rng(seed)
  image = np.full((64, 64), 255, np.uint8)
  for _ in range(3):
    r0, c0, r1, c1 = rng.integers(4, 60, 4)
    t = np.linspace(0, 1, 100)
    image[np.round(r0 + t * (r1 - r0)).astype(int), np.round(c0 + t * (c1 - c0)).astype(int)] = 0
  return image


def photo(seed: int) -> np.ndarray:
  """A (48, 64, 3) float image in [0, 1]: a colour gradient."""
  rng = np.random.default_rng(seed)
  ramp = np.linspace(0, 1, 64)[None, :, None] * np.ones((48, 1, 1))
  return np.clip(ramp * rng.uniform(0, 1, 3) + (1 - ramp) * rng.uniform(0, 1, 3), 0, 1)


def assert_png(path, size):
  with Image.open(path) as im:
    assert im.format == "PNG"
    assert im.size == size
    im.load()


def test_retrieval_grid_from_paths_and_arrays(tmp_path):
  query_paths = []
  for i in range(3):
    query_paths.append(tmp_path / f"q{i}.png")
    Image.fromarray(sketch(i)).save(query_paths[-1])
  retrieved = [[photo(10 * i + j) for j in range(5)] for i in range(3)]
  relevant = np.random.default_rng(0).random((3, 5)) < 0.5
  out = tmp_path / "grid.png"
  plots.retrieval_grid(query_paths, retrieved, relevant, out, scores=np.ones((3, 5)),
                       cell_inches=1.5, dpi=80)
  assert_png(out, (6 * 120, 3 * 120))
  with pytest.raises(ValueError, match="retrieved images each"):
    plots.retrieval_grid(query_paths, retrieved[:2], relevant, out)


def test_pr_curves_and_per_class_ap(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.standard_normal((300, 16)).astype(np.float32)
  labels = rng.integers(0, 6, 300)
  x[:, :6] += 2 * np.eye(6)[labels]
  result = metrics.evaluate(x[:100], labels[:100], x[100:], labels[100:], metrics=("map@all",))
  out = tmp_path / "pr.png"
  plots.pr_curves({"split A": (result.pr_recall, result.pr_precision),
                   "chance": (result.pr_recall, np.full(11, 1 / 6))}, out, dpi=50)
  assert_png(out, (300, 225))
  out = tmp_path / "ap.png"
  ap = result.per_class["map@all"].copy()
  ap[2] = np.nan
  plots.per_class_ap([f"class {c}" for c in result.classes], ap, out, dpi=100)
  assert_png(out, (700, round(100 * (1.5 + 0.22 * 6))))
