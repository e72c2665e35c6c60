"""A synthetic stand-in for Sketchy Extended: its layout, file names and counts, for rehearsals.

Real Sketchy is 148k images; this writes the same tree under <root>/Sketchy/ so that the whole
path of the `sketchy25` split (check, input pipeline, training, embedding, evaluation) can be
run and timed at full size without the download:

  256x256/sketch/tx_000000000000_ready/<class>/<photo>-<n>.png   sketches (grayscale PNG)
  256x256/photo/tx_000000000000_ready/<class>/<photo>.jpg        originals, 100 per class
  EXTEND_image_sketchy_ready/<class>/<name>.jpg                  extended photos (JPEG)
  zeroshot1/  cname_cid.txt, cname_cid_zero.txt, sketch_tx_000000000000_ready_filelist_
              {train,test,zero}.txt, all_photo_filelist_{train,zero}.txt
  synthetic_sketchy.json  what wrote it (this tree is not Sketchy)

The counts (`SketchyCounts`) are Sketchy Extended's 75,471 sketches and 73,002 photos over 125
classes, with SAKE's zeroshot1 list sizes: 15,229 queries, a 17,101-photo gallery and 50
held-out sketches per seen class. The published counts fix those three lists; the training
lists take the rest (55,242 sketches, 55,901 photos), derived from the totals. As in SAKE's
gallery, EXTEND_image_sketchy_ready holds byte copies of the originals (2,499 of the unseen
classes' 2,500; here all of the seen classes'), so those photos are listed twice.

The classes are the 25 unseen classes of data/splits/sketchy25.txt and 100 seen classes named
`seen_000` ...; each is a shape program of `synthetic_shapes`. Rendering every one of 148k
images would make generation slow, so each class renders a pool of `pool_size` sketches and
photos at 256 px and every file is a pool image flipped and rolled by its own seeded offset,
then encoded: grayscale PNG for sketches, JPEG (quality 90) for photos. Real Sketchy photos are
larger and slower to decode than these (experiments/benchmarks/SCALING.md compares them). The
same seed gives byte-identical files whatever the number of workers.
"""
import dataclasses
import json
import os

import numpy as np
from PIL import Image

from zsbir_jax import domains
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic
from zsbir_jax.data import synthetic_photo
from zsbir_jax.data import synthetic_shapes
from zsbir_jax.data import synthetic_sketch

GENERATOR_VERSION = 1
SPLIT = lists.SPLITS["sketchy25"]
IMAGE_SIZE = 256
SKETCH_DIR = "256x256/sketch/tx_000000000000_ready"
PHOTO_DIR = "256x256/photo/tx_000000000000_ready"
EXTEND_DIR = "EXTEND_image_sketchy_ready"
RECORD_FILE = "synthetic_sketchy.json"
_JPEG_QUALITY = 90
_MAX_SHIFT = 24  # pixels a file's image is rolled from its pool image, each axis


@dataclasses.dataclass(frozen=True)
class SketchyCounts:
  """List sizes of the tree; the defaults are Sketchy Extended's with SAKE's zeroshot1 lists.

  query, gallery: the unseen lists (gallery including `unseen_copies` duplicated originals).
  train_sketches, train_photos: the seen training lists (train photos including one copy of
  every seen original). Per class, counts are spread evenly (differing by at most one).
  """
  num_seen: int = 100
  num_unseen: int = 25
  originals_per_class: int = 100
  test_sketches_per_class: int = 50
  query: int = 15_229
  gallery: int = 17_101
  train_sketches: int = 55_242
  train_photos: int = 55_901
  unseen_copies: int = 2_499


def _spread(total: int, parts: int) -> list[int]:
  """`total` split into `parts` counts that differ by at most one (larger ones first)."""
  return [total // parts + (i < total % parts) for i in range(parts)]


def class_names(counts: SketchyCounts) -> tuple[list[str], list[str]]:
  """(seen, unseen) class names: `seen_000`, ... and the shipped unseen classes of sketchy25."""
  unseen = lists.shipped_unseen_classes(SPLIT)[:counts.num_unseen]
  return [f"seen_{i:03d}" for i in range(counts.num_seen)], unseen


@dataclasses.dataclass(frozen=True)
class _ClassFiles:
  """What one class holds: sketch, original-photo and extended-photo file names (relative to
  its class directory), and which originals EXTEND copies (a prefix of `originals`)."""
  sketches: list[str]
  originals: list[str]
  extended: list[str]
  copies: int


def _class_files(class_id: int, num_sketches: int, num_originals: int, num_extended: int,
                 copies: int) -> _ClassFiles:
  """File names in Sketchy's style: sketch `<photo>-<n>.png` draws original `<photo>.jpg`."""
  originals = [f"n{90_000_000 + class_id}_{i:05d}" for i in range(num_originals)]
  sketches = [f"{originals[i % num_originals]}-{i // num_originals + 1}.png"
              for i in range(num_sketches)]
  extended = ([f"{name}.jpg" for name in originals[:copies]]
              + [f"ext{class_id:03d}_{j:05d}.jpg" for j in range(num_extended - copies)])
  return _ClassFiles(sketches, [f"{name}.jpg" for name in originals], extended, copies)


def plan(counts: SketchyCounts = SketchyCounts()) -> dict[str, _ClassFiles]:
  """Class name -> its files (seen classes first), with the list sizes of `counts`."""
  seen, unseen = class_names(counts)
  if len(unseen) < counts.num_unseen:
    raise ValueError(f"sketchy25 has {len(unseen)} unseen classes, not {counts.num_unseen}")
  per_unseen_copies = _spread(counts.unseen_copies, counts.num_unseen)[::-1]  # 99 comes last
  files = {}
  for i, (sketches, extended) in enumerate(zip(
      _spread(counts.train_sketches, counts.num_seen),
      _spread(counts.train_photos - counts.num_seen * counts.originals_per_class,
              counts.num_seen))):
    files[seen[i]] = _class_files(i, sketches + counts.test_sketches_per_class,
                                  counts.originals_per_class, extended,
                                  counts.originals_per_class)
  for i, (sketches, extended) in enumerate(zip(
      _spread(counts.query, counts.num_unseen),
      _spread(counts.gallery - counts.num_unseen * counts.originals_per_class,
              counts.num_unseen))):
    files[unseen[i]] = _class_files(counts.num_seen + i, sketches, counts.originals_per_class,
                                    extended, per_unseen_copies[i])
  short = [name for name, f in files.items() if len(f.extended) < f.copies
           or f.copies > len(f.originals) or len(f.sketches) <= counts.test_sketches_per_class]
  if short:
    raise ValueError(f"{counts} leaves too few extended photos, originals or sketches for the "
                     f"copies and held-out sketches of classes {short}")
  return files


@dataclasses.dataclass(frozen=True)
class _ClassJob:
  seed: int
  class_id: int
  name: str
  files: _ClassFiles
  pool_size: int
  out: str


def _variant(pool: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
  """A pool image, flipped with probability 1/2 and rolled by up to _MAX_SHIFT pixels."""
  image = pool[rng.integers(len(pool))]
  if rng.integers(2):
    image = image[:, ::-1]
  shift = rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=2)
  return Image.fromarray(np.roll(image, tuple(shift), axis=(0, 1)))


def _write_class(job: _ClassJob) -> None:
  """Renders the class's pools and writes every sketch, original and extended photo of it."""
  program = synthetic_shapes.class_program(job.seed, job.class_id)
  pools = {}
  for domain, render in ((domains.SKETCH, synthetic_sketch.render_sketch),
                         (domains.PHOTO, synthetic_photo.render_photo)):
    pools[domain] = [np.asarray(render(program, np.random.default_rng(
        [job.seed, job.class_id, domain, i]), IMAGE_SIZE)) for i in range(job.pool_size)]

  def write(domain: int, directory: str, names: list[str], index_offset: int = 0) -> None:
    os.makedirs(os.path.join(job.out, directory, job.name), exist_ok=True)
    for i, name in enumerate(names):
      rng = np.random.default_rng([job.seed, job.class_id, domain, index_offset + i, 1])
      path = os.path.join(job.out, directory, job.name, name)
      if domain == domains.SKETCH:
        _variant(pools[domain], rng).save(path, "PNG")
      else:
        _variant(pools[domain], rng).save(path, "JPEG", quality=_JPEG_QUALITY)

  files = job.files
  write(domains.SKETCH, SKETCH_DIR, files.sketches)
  write(domains.PHOTO, PHOTO_DIR, files.originals)
  extend_dir = os.path.join(job.out, EXTEND_DIR, job.name)
  os.makedirs(extend_dir, exist_ok=True)
  for name in files.extended[:files.copies]:  # byte copies of the originals
    with open(os.path.join(job.out, PHOTO_DIR, job.name, name), "rb") as f:
      data = f.read()
    with open(os.path.join(extend_dir, name), "wb") as f:
      f.write(data)
  write(domains.PHOTO, EXTEND_DIR, files.extended[files.copies:],
        index_offset=len(files.originals))


def _list_lines(files: dict[str, _ClassFiles], classes: list[str], domain: str,
                test: int = 0, held_out: bool = False) -> list[str]:
  """SAKE list lines of `classes` (label = position): sketches (the last `test` of a class are
  held out: `held_out` selects those) or photos (originals, then every extended photo)."""
  lines = []
  for label, name in enumerate(classes):
    f = files[name]
    if domain == "sketch":
      chosen = f.sketches[len(f.sketches) - test:] if held_out else f.sketches[:len(f.sketches)
                                                                               - test]
      lines += [f"{SKETCH_DIR}/{name}/{s} {label}" for s in chosen]
    else:
      lines += [f"{PHOTO_DIR}/{name}/{p} {label}" for p in f.originals]
      lines += [f"{EXTEND_DIR}/{name}/{p} {label}" for p in f.extended]
  return lines


def generate(root: str, counts: SketchyCounts = SketchyCounts(), seed: int = 0,
             pool_size: int = 8, workers: int = 1) -> dict:
  """Writes the tree to <root>/Sketchy (which must not exist); returns the record it writes."""
  out = os.path.join(root, SPLIT.dataset_dir)
  if os.path.exists(out):
    raise FileExistsError(f"{out!r} exists; remove it or choose another root")
  os.makedirs(out)
  files = plan(counts)
  seen, unseen = class_names(counts)
  jobs = [_ClassJob(seed, class_id, name, files[name], pool_size, out)
          for class_id, name in enumerate(seen + unseen)]
  synthetic.run_jobs(_write_class, jobs, workers)
  test = counts.test_sketches_per_class
  lines = {
      "train_sketch": _list_lines(files, seen, "sketch", test),
      "test_sketch": _list_lines(files, seen, "sketch", test, held_out=True),
      "train_photo": _list_lines(files, seen, "photo"),
      "query": _list_lines(files, unseen, "sketch"),
      "gallery": _list_lines(files, unseen, "photo"),
  }
  list_dir = os.path.join(out, SPLIT.list_dir)
  os.makedirs(list_dir)
  lists.write_split_lists(list_dir, SPLIT, lines, seen, unseen)
  record = {"generator": "zsbir_jax.data.synthetic_sketchy", "version": GENERATOR_VERSION,
            "seed": seed, "pool_size": pool_size, "split": SPLIT.name,
            "counts": {role: len(v) for role, v in lines.items()},
            "note": "synthetic images in Sketchy's layout, for rehearsals; not Sketchy"}
  with open(os.path.join(out, RECORD_FILE), "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1)
  return record
