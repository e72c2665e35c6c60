"""Sketchy mini splits: SAKE-format lists over a small tree of real Sketchy sketches and photos.

The standard Sketchy-25 and Sketchy-21 zero-shot splits (their unseen classes as shipped in
data/splits/) instantiated on whatever subset of Sketchy's 125 classes and files a tree holds,
for example 25 sketches and 25 photos per class. Two tree layouts are read:

  the full download:  <tree>/256x256/{sketch,photo}/tx_000000000000/<class>/<file>
  a flat subset:      <tree>/{sketch,photo}/<class>/<file>

`write_split` links the tree's sketch and photo directories into <root>/SketchyMini/ and writes
the lists, class files and a manifest of the counts to <root>/SketchyMini/<list_dir>/, so that
`lists.load_split` and `check.check_split` read it like any other split. Every unseen class of
the split must be in the tree; every other class of the tree is seen. A few sketches of every
seen class (the first in sorted file order) are held out for model selection and never trained
on; unseen sketches are the queries and unseen photos the gallery.
"""
import json
import os

from zsbir_jax.data import lists

DATASET_DIR = "SketchyMini"
# (sketch directory, photo directory) relative to the tree, in the order they are looked for.
LAYOUTS = (("256x256/sketch/tx_000000000000", "256x256/photo/tx_000000000000"),
           ("sketch", "photo"))
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class SketchyTreeError(ValueError):
  """A tree that cannot form the split: no known layout, a missing class or an empty class."""


def find_domain_dirs(tree: str) -> tuple[str, str]:
  """(sketch directory, photo directory) of the first layout in LAYOUTS that `tree` holds."""
  for sketch_dir, photo_dir in LAYOUTS:
    sketch_dir, photo_dir = os.path.join(tree, sketch_dir), os.path.join(tree, photo_dir)
    if os.path.isdir(sketch_dir) and os.path.isdir(photo_dir):
      return sketch_dir, photo_dir
  expected = " or ".join(f"{s}/ and {p}/" for s, p in LAYOUTS)
  raise SketchyTreeError(f"{tree!r} is not a Sketchy tree: expected {expected} under it")


def _class_files(domain_dir: str, classes: list[str], domain: str) -> dict[str, list[str]]:
  """Class -> its image file names in sorted order; a missing or empty class is an error."""
  files = {}
  for name in classes:
    class_dir = os.path.join(domain_dir, name)
    if not os.path.isdir(class_dir):
      raise SketchyTreeError(f"class {name!r} has no {domain} directory {class_dir!r}")
    files[name] = sorted(f for f in os.listdir(class_dir)
                         if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files[name]:
      raise SketchyTreeError(f"class {name!r} has no {domain} images in {class_dir!r}")
  return files


def _link(target: str, link: str):
  """Makes `link` a symbolic link to `target`, or checks that it already is one."""
  target = os.path.abspath(target)
  if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(target):
    return
  if os.path.lexists(link):
    raise FileExistsError(f"{link!r} exists and is not a link to {target!r}")
  os.symlink(target, link)


def write_split(tree: str, root: str, split: str, *, sketches_per_class: int | None = None,
                photos_per_class: int | None = None, val_per_class: int = 3) -> dict:
  """Writes split `split` ("sketchy25_mini" or "sketchy21_mini") of the Sketchy `tree` to `root`.

  At most `sketches_per_class` sketches and `photos_per_class` photos of every class are used
  (the first in sorted file order; None: all); of a seen class's sketches, the first
  `val_per_class` form the held-out validation list. Returns the manifest it writes.
  """
  spec = lists.get_split(split)
  if spec.dataset_dir != DATASET_DIR:
    raise ValueError(f"split {split!r} is not a Sketchy mini split")
  sketch_dir, photo_dir = find_domain_dirs(tree)
  unseen = list(lists.shipped_unseen_classes(spec))
  in_tree = sorted(set(os.listdir(sketch_dir)) | set(os.listdir(photo_dir)))
  in_tree = [c for c in in_tree if os.path.isdir(os.path.join(sketch_dir, c))
             or os.path.isdir(os.path.join(photo_dir, c))]
  absent = [c for c in unseen if c not in in_tree]
  if absent:
    raise SketchyTreeError(f"unseen classes of {split} missing from {tree!r}: {absent}")
  seen = [c for c in in_tree if c not in unseen]
  sketches = _class_files(sketch_dir, seen + unseen, "sketch")
  photos = _class_files(photo_dir, seen + unseen, "photo")
  for name in seen + unseen:
    sketches[name] = sketches[name][:sketches_per_class]
    photos[name] = photos[name][:photos_per_class]
  too_few = [c for c in seen if len(sketches[c]) <= val_per_class]
  if too_few:
    raise SketchyTreeError(f"seen classes with at most val_per_class={val_per_class} sketches "
                           f"(none left to train on): {too_few}")

  def entries(domain: str, files: dict[str, list[str]], classes: list[str],
              start: int = 0, stop: int | None = None) -> list[str]:
    return [f"{domain}/{name}/{f} {label}" for label, name in enumerate(classes)
            for f in files[name][start:stop]]

  out = {
      "train_sketch": entries("sketch", sketches, seen, start=val_per_class),
      "test_sketch": entries("sketch", sketches, seen, stop=val_per_class),
      "train_photo": entries("photo", photos, seen),
      "query": entries("sketch", sketches, unseen),
      "gallery": entries("photo", photos, unseen),
  }
  dataset_dir = os.path.join(root, DATASET_DIR)
  list_dir = os.path.join(dataset_dir, spec.list_dir)
  os.makedirs(list_dir, exist_ok=True)
  _link(sketch_dir, os.path.join(dataset_dir, "sketch"))
  _link(photo_dir, os.path.join(dataset_dir, "photo"))
  lists.write_split_lists(list_dir, spec, out, seen, unseen)
  manifest = {
      "split": split, "tree": os.path.abspath(tree),
      "counts": {role: len(lines) for role, lines in out.items()},
      "classes": {"seen": len(seen), "unseen": len(unseen)},
      "per_class": {"sketches": sketches_per_class, "photos": photos_per_class,
                    "val_sketches": val_per_class},
  }
  with open(os.path.join(dataset_dir, spec.manifest), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=1)
  return manifest
