"""Tests for the procedural synthetic benchmark."""
import hashlib
import os

import numpy as np
from PIL import Image
from PIL import ImageFilter
import pytest

from zsbir_jax import domains
from zsbir_jax.data import check
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic
from zsbir_jax.data import synthetic_photo
from zsbir_jax.data import synthetic_shapes
from zsbir_jax.data import synthetic_sketch

_TINY = synthetic.SyntheticConfig(
    seed=3, image_size=32, num_seen=4, num_unseen=2, sketches_per_class=3,
    test_sketches_per_class=2, photos_per_class=3, num_pretrain=3, pretrain_photos_per_class=4,
    pretrain_val_per_class=1)


def _hashes(root):
  """sha256 of every file under root, keyed by relative path."""
  out = {}
  for dirpath, _, files in os.walk(root):
    for name in files:
      path = os.path.join(dirpath, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return out


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, _TINY)
  return root


def test_same_seed_same_bytes_whatever_the_workers(tiny_root, tmp_path):
  synthetic.generate(str(tmp_path / "again"), _TINY, workers=2)
  first, again = _hashes(tiny_root), _hashes(tmp_path / "again")
  assert first == again
  # 4 x (3 + 2) + 2 x 3 sketches, 4 x 3 + 2 x 3 + 3 x 4 photos, 10 list/class files, manifest.
  assert len(first) == 26 + 30 + 10 + 1
  synthetic.generate(str(tmp_path / "other"), synthetic.SyntheticConfig(
      **{**_TINY.__dict__, "seed": 4}))
  other = _hashes(tmp_path / "other")
  images_first = {k: v for k, v in first.items() if k.endswith((".png", ".jpg"))}
  assert images_first.keys() == {k for k in other if k.endswith((".png", ".jpg"))}
  assert all(other[k] != v for k, v in images_first.items())


def test_layout_is_read_by_load_split(tiny_root):
  c = _TINY
  data = lists.load_split(tiny_root, "synthetic")
  assert data.seen_classes == tuple(synthetic.class_name(k) for k in range(4))
  assert data.unseen_classes == ("shape 004", "shape 005")
  assert not set(data.seen_classes) & set(data.unseen_classes)
  sketches = [r for r in data.train if r.domain == domains.SKETCH]
  photos = [r for r in data.train if r.domain == domains.PHOTO]
  assert len(sketches) == c.num_seen * c.sketches_per_class
  assert len(photos) == c.num_seen * c.photos_per_class
  assert len(data.val) == c.num_seen * c.test_sketches_per_class
  assert len(data.query) == len(data.gallery) == c.num_unseen * 3
  assert {r.domain for r in data.val + data.query} == {domains.SKETCH}
  assert {r.domain for r in data.gallery} == {domains.PHOTO}
  assert {r.label for r in data.train} == {r.label for r in data.val} == set(range(4))
  assert {r.label for r in data.query} == {r.label for r in data.gallery} == {0, 1}
  assert not {r.path for r in data.val} & {r.path for r in data.train}
  for r in (data.train[0], data.gallery[0]):
    assert images.load_rgb(r.path).shape == (32, 32, 3)
  assert data.query[0].path.endswith(".png") and data.gallery[0].path.endswith(".jpg")
  manifest = lists.read_manifest(tiny_root, lists.SPLITS["synthetic"])
  assert manifest["version"] == synthetic.GENERATOR_VERSION
  assert manifest["config"]["seed"] == 3
  assert manifest["counts"] == {"train_sketch": 12, "train_photo": 12, "test_sketch": 8,
                                "query": 6, "gallery": 6, "pretrain_train": 9,
                                "pretrain_val": 3}


def test_pretrain_set_is_disjoint_and_checks_clean(tiny_root):
  data = lists.load_split(tiny_root, "synthetic")
  pre = lists.load_pretrain(tiny_root)
  assert pre.classes == ("shape 006", "shape 007", "shape 008")
  assert not set(pre.classes) & (set(data.seen_classes) | set(data.unseen_classes))
  assert len(pre.train) == 3 * 3 and len(pre.val) == 3
  assert {r.domain for r in pre.train + pre.val} == {domains.PHOTO}
  assert not {r.path for r in pre.train} & {r.path for r in pre.val}
  assert check.check_split(tiny_root, "synthetic").problems == ()


def test_regenerating_replaces_only_generated_trees(tmp_path):
  config = synthetic.SyntheticConfig(**{**_TINY.__dict__, "num_seen": 1, "num_unseen": 1,
                                        "num_pretrain": 1})
  synthetic.generate(str(tmp_path), _TINY)
  synthetic.generate(str(tmp_path), config)
  assert len(lists.load_split(str(tmp_path), "synthetic").seen_classes) == 1
  assert not os.path.exists(tmp_path / "Synthetic" / "sketch" / "shape 003")
  other = tmp_path / "user"
  (other / "Synthetic").mkdir(parents=True)
  (other / "Synthetic" / "mine.txt").write_text("keep")
  with pytest.raises(FileExistsError, match="holds no manifest.json"):
    synthetic.generate(str(other), config)
  assert (other / "Synthetic" / "mine.txt").read_text() == "keep"


def test_sketches_are_ink_on_white_and_photos_are_coloured():
  program = synthetic_shapes.class_program(0, 0)
  sketch = synthetic_sketch.render_sketch(program, np.random.default_rng(0), 64)
  photo = synthetic_photo.render_photo(program, np.random.default_rng(0), 64)
  assert sketch.mode == "L" and photo.mode == "RGB" and sketch.size == photo.size == (64, 64)
  s = np.asarray(sketch)
  assert (s[0] == 255).all() and (s[:, 0] == 255).all()  # white margin
  assert 0.02 < (s < 128).mean() < 0.3 and s.min() < 60  # some dark ink, mostly background
  hsv = np.asarray(photo.convert("HSV"), np.float64)
  assert hsv[..., 1].mean() > 40 and hsv[..., 2].std() > 15  # coloured, not flat


def _features(image):
  """Blurred 16 x 16 grayscale, zero-mean, unit-norm: a crude shape descriptor."""
  small = image.convert("L").filter(ImageFilter.GaussianBlur(1)).resize(
      (16, 16), Image.Resampling.BILINEAR)
  f = np.asarray(small, np.float64).ravel()
  f -= f.mean()
  return f / np.linalg.norm(f)


def test_classes_are_distinguishable_and_domains_differ():
  num_classes, per_class = 12, 6
  labels = np.repeat(np.arange(num_classes), per_class)
  sketches, photos = [], []
  for c in range(num_classes):
    program = synthetic_shapes.class_program(0, c)
    for i in range(per_class):
      sketches.append(_features(synthetic_sketch.render_sketch(program, np.random.default_rng(
          [c, 0, i]), 32)))
      photos.append(_features(synthetic_photo.render_photo(program, np.random.default_rng(
          [c, 1, i]), 32)))
  sketches, photos = np.stack(sketches), np.stack(photos)
  same = labels[:, None] == labels[None]
  self_pair = np.eye(len(labels), dtype=bool)
  for x in (sketches, photos):
    similarity = x @ x.T
    assert similarity[same & ~self_pair].mean() > similarity[~same].mean() + 0.05

  def nearest_neighbour_accuracy(queries, gallery, leave_one_out):
    similarity = queries @ gallery.T
    if leave_one_out:
      similarity[self_pair] = -np.inf
    return (labels[similarity.argmax(1)] == labels).mean()

  # Within the sketch domain, raw pixels retrieve the class; across domains they are near
  # chance (1/12): the gap a model has to bridge.
  assert nearest_neighbour_accuracy(sketches, sketches, True) > 0.75
  assert nearest_neighbour_accuracy(sketches, photos, False) < 0.25
