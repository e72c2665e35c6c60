"""Sketchy mini splits from hand-made trees in both layouts: lists, counts, check, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zsbir_jax.data import check
from zsbir_jax.data import lists
from zsbir_jax.data import sketchy_mini

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SEEN = ["apple", "bear", "zebra"]  # classes of neither split's unseen set


def _unseen(split: str) -> list[str]:
  return lists.shipped_unseen_classes(lists.get_split(split))


def make_tree(tree: str, layout: tuple[str, str], sketches: int = 4, photos: int = 3):
  """Every unseen class of both splits and _SEEN, with tiny PNG sketches and JPEG photos."""
  classes = sorted(set(_unseen("sketchy25_mini")) | set(_unseen("sketchy21_mini")) | set(_SEEN))
  rng = np.random.default_rng(0)
  for name in classes:
    for k in range(sketches):
      path = os.path.join(tree, layout[0], name, f"n0_{k // 2}-{k % 2 + 1}.png")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(rng.integers(0, 256, (8, 8), np.uint8), mode="L").save(path)
    for k in range(photos):
      path = os.path.join(tree, layout[1], name, f"n0_{k}.jpg")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(path)
  return classes


@pytest.mark.parametrize("layout", sketchy_mini.LAYOUTS)
@pytest.mark.parametrize("split", ["sketchy25_mini", "sketchy21_mini"])
def test_split_from_either_layout_passes_the_check(tmp_path, layout, split):
  tree, root = str(tmp_path / "tree"), str(tmp_path / "root")
  classes = make_tree(tree, layout)
  manifest = sketchy_mini.write_split(tree, root, split, val_per_class=1)
  unseen = _unseen(split)
  seen = [c for c in classes if c not in unseen]
  data = lists.load_split(root, split)
  assert data.unseen_classes == tuple(unseen) and data.seen_classes == tuple(seen)
  assert len(data.query) == 4 * len(unseen) and len(data.gallery) == 3 * len(unseen)
  assert len(data.val) == len(seen)
  assert len(data.train) == (4 - 1) * len(seen) + 3 * len(seen)
  # The held-out sketch of each seen class is its first file, and is never trained on.
  assert {os.path.basename(r.path) for r in data.val} == {"n0_0-1.png"}
  assert not {r.path for r in data.val} & {r.path for r in data.train}
  for r in data.query + data.gallery:
    assert os.path.basename(os.path.dirname(r.path)) == unseen[r.label]
  report = check.check_split(root, split)
  assert report.problems == (), check.format_report(report)
  assert manifest["counts"]["query"] == len(data.query)


def test_per_class_counts(tmp_path):
  tree, root = str(tmp_path / "tree"), str(tmp_path / "root")
  num_seen = len(make_tree(tree, ("sketch", "photo"))) - 25
  sketchy_mini.write_split(tree, root, "sketchy25_mini", sketches_per_class=3,
                           photos_per_class=2, val_per_class=2)
  data = lists.load_split(root, "sketchy25_mini")
  assert len(data.query) == 3 * 25 and len(data.gallery) == 2 * 25
  assert len(data.val) == 2 * num_seen and len(data.train) == (1 + 2) * num_seen
  assert check.check_split(root, "sketchy25_mini").problems == ()


def test_missing_and_empty_classes_are_named(tmp_path):
  tree = str(tmp_path / "tree")
  make_tree(tree, ("sketch", "photo"))
  os.rename(os.path.join(tree, "sketch", "swan"), os.path.join(tmp_path, "swan"))
  os.rename(os.path.join(tree, "photo", "swan"), os.path.join(tmp_path, "swan_photo"))
  with pytest.raises(sketchy_mini.SketchyTreeError, match="missing.*'swan'"):
    sketchy_mini.write_split(tree, str(tmp_path / "root"), "sketchy25_mini")
  # sketchy21 does not need swan; an empty photo directory of one of its classes is an error.
  for f in os.listdir(os.path.join(tree, "photo", "cabin")):
    os.remove(os.path.join(tree, "photo", "cabin", f))
  with pytest.raises(sketchy_mini.SketchyTreeError, match="'cabin' has no photo images"):
    sketchy_mini.write_split(tree, str(tmp_path / "root"), "sketchy21_mini")
  os.rmdir(os.path.join(tree, "photo", "cabin"))
  with pytest.raises(sketchy_mini.SketchyTreeError, match="'cabin' has no photo directory"):
    sketchy_mini.write_split(tree, str(tmp_path / "root"), "sketchy21_mini")
  with pytest.raises(sketchy_mini.SketchyTreeError, match="not a Sketchy tree"):
    sketchy_mini.write_split(str(tmp_path), str(tmp_path / "root"), "sketchy21_mini")


def test_command_writes_both_splits(tmp_path):
  tree, root = str(tmp_path / "tree"), str(tmp_path / "root")
  make_tree(tree, sketchy_mini.LAYOUTS[0])
  result = subprocess.run(
      [sys.executable, "-m", "experiments.make_sketchy_mini", f"--sketchy={tree}",
       f"--root={root}", "--val_per_class=1"], cwd=REPO, capture_output=True, text=True,
      check=False)
  assert result.returncode == 0, result.stderr
  for split in ("sketchy25_mini", "sketchy21_mini"):
    assert check.check_split(root, split).problems == ()
