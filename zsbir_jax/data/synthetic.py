"""A procedural zero-shot sketch/photo benchmark that a 2-core CPU can train on in minutes.

A class is a seeded shape program (`synthetic_shapes`): a layout of primitives, each with a
class-specific colour and texture. Photos (JPEG, `synthetic_photo`) fill the parts with textured,
shaded colour on a cluttered background, without outlines; sketches (PNG, grayscale,
`synthetic_sketch`) draw their outlines as wobbly black strokes on white, without fill. So class
identity lives in the shape layout shared by both domains, while appearance (colour, texture,
clutter versus clean ink) differs: a real domain gap.

This module writes the benchmark: `generate` writes the SAKE layout and list files read by
`lists.load_split(root, "synthetic")`, plus a disjoint photo-only pretraining set (the stand-in
for ImageNet) read by `lists.load_pretrain(root)`, and a JSON manifest. Every image is drawn
from its own seed (seed, class, domain, index), so the output is byte-identical for a seed
whatever the number of worker processes.
"""
from collections.abc import Callable
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import shutil
from typing import Any

import numpy as np
from PIL import Image

from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic_photo
from zsbir_jax.data import synthetic_shapes
from zsbir_jax.data import synthetic_sketch

GENERATOR_VERSION = 1
SPLIT = lists.SPLITS["synthetic"]

_JPEG_QUALITY = 90


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Sizes of the generated benchmark.

  Seen classes get `sketches_per_class` train sketches, `test_sketches_per_class` held-out
  sketches and `photos_per_class` photos; unseen classes `sketches_per_class` query sketches and
  `photos_per_class` gallery photos; pretraining classes `pretrain_photos_per_class` photos, of
  which `pretrain_val_per_class` form the validation list.
  """
  seed: int = 0
  image_size: int = 64
  num_seen: int = 100
  num_unseen: int = 25
  sketches_per_class: int = 30
  test_sketches_per_class: int = 10
  photos_per_class: int = 30
  num_pretrain: int = 100
  pretrain_photos_per_class: int = 40
  pretrain_val_per_class: int = 8


def class_name(class_id: int) -> str:
  """Directory and class-file name of class `class_id` (contains a space, like TU-Berlin's)."""
  return f"shape {class_id:03d}"


@dataclasses.dataclass(frozen=True)
class _ClassJob:
  """Render `num_sketches` sketches and `num_photos` photos of one class into the dirs."""
  seed: int
  class_id: int
  image_size: int
  num_sketches: int
  num_photos: int
  sketch_dir: str
  photo_dir: str


def _render_class(job: _ClassJob) -> None:
  program = synthetic_shapes.class_program(job.seed, job.class_id)
  name = class_name(job.class_id)
  if job.num_sketches:
    os.makedirs(os.path.join(job.sketch_dir, name), exist_ok=True)
  if job.num_photos:
    os.makedirs(os.path.join(job.photo_dir, name), exist_ok=True)
  for i in range(job.num_sketches):
    rng = np.random.default_rng([job.seed, 1, job.class_id, domains.SKETCH, i])
    synthetic_sketch.render_sketch(program, rng, job.image_size).save(
        os.path.join(job.sketch_dir, name, f"{i:04d}.png"), "PNG")
  for i in range(job.num_photos):
    rng = np.random.default_rng([job.seed, 1, job.class_id, domains.PHOTO, i])
    synthetic_photo.render_photo(program, rng, job.image_size).save(
        os.path.join(job.photo_dir, name, f"{i:04d}.jpg"), "JPEG", quality=_JPEG_QUALITY)


def run_jobs(fn: Callable[[Any], None], jobs: list, workers: int) -> None:
  """fn(job) for every job, in `workers` spawned processes (1: in this process)."""
  if workers > 1:
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      list(pool.map(fn, jobs))
  else:
    for job in jobs:
      fn(job)


def _list_lines(subdir: str, classes: list[int], indices: range, ext: str) -> list[str]:
  """SAKE list lines `<subdir>/<class>/<index>.<ext> <label>`, label = position in `classes`."""
  return [f"{subdir}/{class_name(c)}/{i:04d}.{ext} {label}"
          for label, c in enumerate(classes) for i in indices]


def _write_split_lists(out: str, c: SyntheticConfig, seen: list[int],
                       unseen: list[int]) -> dict[str, list[str]]:
  """Writes the zero-shot split's list and class files; returns {role: list lines}."""
  list_dir = os.path.join(out, SPLIT.list_dir)
  os.makedirs(list_dir)
  train = range(c.sketches_per_class)
  lines = {
      "train_sketch": _list_lines("sketch", seen, train, "png"),
      "test_sketch": _list_lines(
          "sketch", seen, range(c.sketches_per_class,
                                c.sketches_per_class + c.test_sketches_per_class), "png"),
      "train_photo": _list_lines("photo", seen, range(c.photos_per_class), "jpg"),
      "query": _list_lines("sketch", unseen, train, "png"),
      "gallery": _list_lines("photo", unseen, range(c.photos_per_class), "jpg"),
  }
  lists.write_split_lists(list_dir, SPLIT, lines, [class_name(k) for k in seen],
                          [class_name(k) for k in unseen])
  return lines


def _write_pretrain_lists(out: str, c: SyntheticConfig,
                          pretrain: list[int]) -> dict[str, list[str]]:
  """Writes the photo-only pretraining set's lists and class file; returns {role: lines}."""
  spec = SPLIT.pretrain
  pretrain_lists = os.path.join(out, spec.list_dir)
  os.makedirs(pretrain_lists)
  num_val = c.pretrain_val_per_class
  lines = {"pretrain_val": _list_lines("pretrain_photo", pretrain, range(num_val), "jpg"),
           "pretrain_train": _list_lines("pretrain_photo", pretrain,
                                         range(num_val, c.pretrain_photos_per_class), "jpg")}
  lists.write_lines(os.path.join(pretrain_lists, spec.train_list), lines["pretrain_train"])
  lists.write_lines(os.path.join(pretrain_lists, spec.val_list), lines["pretrain_val"])
  lists.write_lines(os.path.join(pretrain_lists, spec.class_file),
               [f"{class_name(k)} {i}" for i, k in enumerate(pretrain)])
  return lines


def generate(root: str, config: SyntheticConfig = SyntheticConfig(), workers: int = 1) -> dict:
  """Writes the benchmark to `<root>/Synthetic` and returns its manifest.

  Classes 0..num_seen-1 are seen, the next num_unseen unseen, the next num_pretrain the
  pretraining set. The tree is built in `<root>/Synthetic.partial` and renamed when complete;
  an existing `<root>/Synthetic` is replaced only if it holds a manifest (was generated).
  """
  c = config
  if c.pretrain_val_per_class >= c.pretrain_photos_per_class:
    raise ValueError(f"pretrain_val_per_class={c.pretrain_val_per_class} must be smaller than "
                     f"pretrain_photos_per_class={c.pretrain_photos_per_class}")
  final = os.path.join(root, SPLIT.dataset_dir)
  if os.path.exists(final) and not os.path.isfile(os.path.join(final, SPLIT.manifest)):
    raise FileExistsError(f"{final} exists and holds no {SPLIT.manifest}: not replacing it")
  out = final + ".partial"
  shutil.rmtree(out, ignore_errors=True)
  seen = list(range(c.num_seen))
  unseen = list(range(c.num_seen, c.num_seen + c.num_unseen))
  pretrain = list(range(c.num_seen + c.num_unseen, c.num_seen + c.num_unseen + c.num_pretrain))

  sketch_dir, photo_dir = os.path.join(out, "sketch"), os.path.join(out, "photo")
  pretrain_dir = os.path.join(out, "pretrain_photo")
  num_seen_sketches = c.sketches_per_class + c.test_sketches_per_class
  jobs = ([_ClassJob(c.seed, k, c.image_size, num_seen_sketches, c.photos_per_class,
                     sketch_dir, photo_dir) for k in seen]
          + [_ClassJob(c.seed, k, c.image_size, c.sketches_per_class, c.photos_per_class,
                       sketch_dir, photo_dir) for k in unseen]
          + [_ClassJob(c.seed, k, c.image_size, 0, c.pretrain_photos_per_class,
                       sketch_dir, pretrain_dir) for k in pretrain])
  run_jobs(_render_class, jobs, workers)
  lines = _write_split_lists(out, c, seen, unseen) | _write_pretrain_lists(out, c, pretrain)

  manifest = {
      "generator": "zsbir_jax.data.synthetic",
      "version": GENERATOR_VERSION,
      "config": dataclasses.asdict(c),
      "classes": {"seen": c.num_seen, "unseen": c.num_unseen, "pretrain": c.num_pretrain},
      "counts": {role: len(v) for role, v in sorted(lines.items())},
  }
  with open(os.path.join(out, SPLIT.manifest), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
    f.write("\n")
  if os.path.exists(final):
    shutil.rmtree(final)
  os.rename(out, final)
  return manifest


def contact_sheet(records: tuple[lists.Record, ...], num_classes: int = 8,
                  per_domain: int = 6, tile: int = 64) -> Image.Image:
  """A grid for eyeballing a split: per class (row), `per_domain` sketches then photos."""
  rows = []
  for label in sorted({r.label for r in records})[:num_classes]:
    rows.append([r.path for domain in (domains.SKETCH, domains.PHOTO)
                 for r in [r for r in records if r.label == label and r.domain == domain]
                 [:per_domain]])
  step = tile + 2
  sheet = Image.new("RGB", (2 * per_domain * step, len(rows) * step), (128, 128, 128))
  for row, paths in enumerate(rows):
    for col, path in enumerate(paths):
      image = Image.fromarray(images.load_rgb(path)).resize((tile, tile))
      sheet.paste(image, (col * step + 1, row * step + 1))
  return sheet
