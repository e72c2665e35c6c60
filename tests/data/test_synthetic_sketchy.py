"""The synthetic stand-in for Sketchy Extended: its counts, layout, duplicates and determinism."""
import collections
import os

import pytest

from tests.data.test_synthetic import _hashes
from zsbir_jax import domains
from zsbir_jax.data import check
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic_sketchy

_TINY = synthetic_sketchy.SketchyCounts(
    num_seen=3, num_unseen=2, originals_per_class=2, test_sketches_per_class=1, query=5,
    gallery=9, train_sketches=7, train_photos=12, unseen_copies=3)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("sketchy"))
  synthetic_sketchy.generate(root, _TINY, pool_size=2)
  return root


def test_the_default_plan_has_sketchy_extended_and_sake_zeroshot1_counts():
  files = synthetic_sketchy.plan()
  seen, unseen = synthetic_sketchy.class_names(synthetic_sketchy.SketchyCounts())
  assert unseen == lists.shipped_unseen_classes(lists.SPLITS["sketchy25"]) and len(seen) == 100
  assert sum(len(f.sketches) for f in files.values()) == 75_471
  assert sum(len(f.originals) + len(f.extended) for f in files.values()) == 73_002
  assert sum(len(files[c].sketches) for c in unseen) == 15_229
  assert sum(len(files[c].originals) + len(files[c].extended) for c in unseen) == 17_101
  assert sum(files[c].copies for c in unseen) == 2_499
  assert {len(f.originals) for f in files.values()} == {100}


def test_lists_layout_and_the_duplicated_originals(tiny_root):
  split = lists.load_split(tiny_root, "sketchy25")
  counts = collections.Counter()
  for role, records in (("train", split.train), ("val", split.val), ("query", split.query),
                        ("gallery", split.gallery)):
    for r in records:
      counts[role, r.domain] += 1
      assert os.path.isfile(r.path), r.path
  assert counts == {("train", domains.SKETCH): 7, ("train", domains.PHOTO): 12,
                    ("val", domains.SKETCH): 3, ("query", domains.SKETCH): 5,
                    ("gallery", domains.PHOTO): 9}
  dataset = os.path.join(tiny_root, "Sketchy")
  gallery = [os.path.relpath(r.path, dataset) for r in split.gallery]
  copies = [p for p in gallery if p.startswith(synthetic_sketchy.EXTEND_DIR)
            and os.path.exists(os.path.join(dataset, synthetic_sketchy.PHOTO_DIR,
                                            *p.split("/")[1:]))]
  assert len(copies) == 3
  for copy in copies:
    original = os.path.join(dataset, synthetic_sketchy.PHOTO_DIR, *copy.split("/")[1:])
    assert open(os.path.join(dataset, copy), "rb").read() == open(original, "rb").read()
  for r in split.query + split.train:
    if r.domain == domains.SKETCH:  # <photo>-<n>.png draws an original of its class
      photo = os.path.basename(r.path).rsplit("-", 1)[0] + ".jpg"
      class_dir = os.path.basename(os.path.dirname(r.path))
      assert os.path.isfile(os.path.join(dataset, synthetic_sketchy.PHOTO_DIR, class_dir, photo))
  sketch = images.load_rgb(split.query[0].path)
  photo = images.load_rgb(split.gallery[0].path)
  assert sketch.shape == photo.shape == (256, 256, 3)


def test_the_check_finds_nothing_but_the_sizes_of_a_tiny_tree(tiny_root):
  report = check.check_split(tiny_root, "sketchy25", mode="full")
  sizes = ("classes, expected", "differ from the split definition", "items in")
  assert report.problems and all(any(s in p for s in sizes) for p in report.problems), (
      report.problems)


def test_same_seed_same_bytes_whatever_the_workers(tiny_root, tmp_path):
  synthetic_sketchy.generate(str(tmp_path), _TINY, pool_size=2, workers=2)
  assert _hashes(tiny_root) == _hashes(str(tmp_path))
  with pytest.raises(FileExistsError):
    synthetic_sketchy.generate(str(tmp_path), _TINY)
