"""SAKE-format list and class files, and the registry of zero-shot splits that read them.

A list line is `<relative path> <integer label>`: the label is the last whitespace token and the
path is everything before it, so paths may contain spaces (TU-Berlin's "alarm clock"). Paths are
relative to the dataset directory (e.g. `Sketchy/`). A class file line is `<class name> <id>`,
names may contain spaces. `*_train` lists hold seen classes, `*_test` lists held-out sketches of
seen classes, `*_zero` lists the unseen classes with labels re-indexed from 0.
"""
import collections
import dataclasses
import json
import os
from typing import NamedTuple

from zsbir_jax.domains import PHOTO, SKETCH

# Where the unseen-class definitions of the published splits are shipped (data/splits/ in the
# repository, one `<class name> <id>` line per class).
SPLITS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "splits")


class Record(NamedTuple):
  """One image of a split: absolute `path`, class `label` in [0, C), `domain` (`domains`)."""
  path: str
  label: int
  domain: int


class ListFormatError(ValueError):
  """A list or class file that cannot be parsed; the message names the file and line number."""


def _parse_line(line: str, list_file: str, lineno: int, what: str) -> tuple[str, int] | None:
  """Splits `<text> <non-negative integer>` at the last whitespace; None for a blank line."""
  line = line.strip()
  if not line:
    return None
  parts = line.rsplit(maxsplit=1)
  if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
    raise ListFormatError(
        f"{list_file}:{lineno}: expected '<{what}> <non-negative integer>', got {line!r}")
  return parts[0], int(parts[1])


def read_list(list_file: str, image_root: str, domain: int) -> list[Record]:
  """Records of a SAKE list file, in file order, with paths joined onto `image_root`.

  Blank lines are ignored; any other line without a trailing integer label raises
  ListFormatError naming the file and line. Extensions are not interpreted (`.JPEG`, `.jpg`).
  """
  image_root = os.path.abspath(image_root)
  records = []
  with open(list_file, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      parsed = _parse_line(line, list_file, lineno, "relative path")
      if parsed is not None:
        records.append(Record(os.path.join(image_root, parsed[0]), parsed[1], domain))
  return records


def read_class_names(class_file: str) -> list[str]:
  """Class names ordered by id from a `<class name> <id>` file.

  The ids must be exactly 0..C-1, each once, and names unique; otherwise ListFormatError names
  the file and the offending line.
  """
  by_id: dict[int, tuple[str, int]] = {}
  with open(class_file, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      parsed = _parse_line(line, class_file, lineno, "class name")
      if parsed is None:
        continue
      name, cid = parsed
      if cid in by_id:
        raise ListFormatError(
            f"{class_file}:{lineno}: id {cid} already used by {by_id[cid][0]!r} "
            f"(line {by_id[cid][1]})")
      by_id[cid] = (name, lineno)
  names = [by_id[i][0] for i in range(len(by_id)) if i in by_id]
  if len(names) != len(by_id):
    gap = min(set(range(len(by_id))) - set(by_id))
    raise ListFormatError(f"{class_file}: ids must be 0..{len(by_id) - 1}; id {gap} is missing")
  duplicates = [n for n, c in collections.Counter(names).items() if c > 1]
  if duplicates:
    raise ListFormatError(f"{class_file}: class name {duplicates[0]!r} appears more than once")
  return names


@dataclasses.dataclass(frozen=True)
class Counts:
  """Item counts per list role; None where no count is published."""
  train_sketch: int | None = None
  train_photo: int | None = None
  test_sketch: int | None = None
  query: int | None = None
  gallery: int | None = None
  pretrain_train: int | None = None
  pretrain_val: int | None = None


@dataclasses.dataclass(frozen=True)
class PretrainSpec:
  """A photo-only classification set (the synthetic ImageNet stand-in) beside a split.

  Files live in `<root>/<dataset_dir of its split>/<list_dir>/`; list paths are relative to the
  split's dataset directory.
  """
  list_dir: str
  train_list: str
  val_list: str
  class_file: str


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """Where a zero-shot split's files live under a data root, and what they should hold.

  Files: `<root>/<dataset_dir>/<list_dir>/<list or class file>`; list paths are relative to
  `<root>/<dataset_dir>`. Splits without a `test_sketch_list` form their validation set from
  the train sketch list: the first `val_per_class` sketches of every seen class in sorted path
  order, removed from train. `published` holds the published counts; `manifest` (generated
  splits: synthetic, Sketchy mini) names a JSON file under the dataset directory whose "counts"
  and "classes" entries replace them. `unseen_list` names the shipped definition of the unseen classes in SPLITS_DIR.
  `pretrain` describes a photo-only pretraining set shipped with the split (synthetic only).
  """
  name: str
  description: str
  dataset_dir: str
  list_dir: str
  train_sketch_list: str
  train_photo_list: str
  test_sketch_list: str | None
  query_list: str
  gallery_list: str
  seen_class_file: str = "cname_cid.txt"
  unseen_class_file: str = "cname_cid_zero.txt"
  num_seen: int | None = None
  num_unseen: int | None = None
  published: Counts = Counts()
  val_per_class: int = 0
  unseen_list: str | None = None
  manifest: str | None = None
  pretrain: PretrainSpec | None = None

  def list_files(self) -> dict[str, str]:
    """Role ("train_sketch", "train_photo", "test_sketch", "query", "gallery") -> list file name."""
    files = {"train_sketch": self.train_sketch_list, "train_photo": self.train_photo_list,
             "test_sketch": self.test_sketch_list, "query": self.query_list,
             "gallery": self.gallery_list}
    return {role: f for role, f in files.items() if f is not None}


_SKETCHY_SKETCH = "sketch_tx_000000000000_ready_filelist_{}.txt"
_SKETCHY_PHOTO = "all_photo_filelist_{}.txt"

def _sketchy_mini(name: str, list_dir: str, standard: str) -> SplitSpec:
  """The standard split `standard`'s unseen classes over a small tree of real Sketchy files."""
  return SplitSpec(
      name=name,
      description=(f"{standard}'s unseen classes over a small tree of real Sketchy files, "
                   "written by experiments.make_sketchy_mini"),
      dataset_dir="SketchyMini", list_dir=list_dir,
      train_sketch_list=_SKETCHY_SKETCH.format("train"),
      train_photo_list=_SKETCHY_PHOTO.format("train"),
      test_sketch_list=_SKETCHY_SKETCH.format("test"),
      query_list=_SKETCHY_SKETCH.format("zero"), gallery_list=_SKETCHY_PHOTO.format("zero"),
      manifest=f"{list_dir}/manifest.json", unseen_list=f"{standard}.txt")


SPLITS: dict[str, SplitSpec] = {s.name: s for s in [
    SplitSpec(
        name="sketchy25",
        description="Sketchy Extended, SAKE's zeroshot1 instantiation (100 seen / 25 unseen)",
        dataset_dir="Sketchy", list_dir="zeroshot1",
        train_sketch_list=_SKETCHY_SKETCH.format("train"),
        train_photo_list=_SKETCHY_PHOTO.format("train"),
        test_sketch_list=_SKETCHY_SKETCH.format("test"),
        query_list=_SKETCHY_SKETCH.format("zero"), gallery_list=_SKETCHY_PHOTO.format("zero"),
        num_seen=100, num_unseen=25,
        # test: 50 held-out sketches per seen class.
        published=Counts(test_sketch=5000, query=15229, gallery=17101),
        unseen_list="sketchy25.txt"),
    SplitSpec(
        name="sketchy21",
        description=("Sketchy Extended, Yelamarthi et al.'s split of classes absent from "
                     "ImageNet-1k, SAKE's zeroshot2 (104 seen / 21 unseen)"),
        dataset_dir="Sketchy", list_dir="zeroshot2",
        train_sketch_list=_SKETCHY_SKETCH.format("train"),
        train_photo_list=_SKETCHY_PHOTO.format("train"),
        test_sketch_list=None,  # the public lists of this split have no test list
        query_list=_SKETCHY_SKETCH.format("zero"), gallery_list=_SKETCHY_PHOTO.format("zero"),
        num_seen=104, num_unseen=21,
        published=Counts(query=12694, gallery=12553),
        val_per_class=50, unseen_list="sketchy21.txt"),
    SplitSpec(
        name="tuberlin30",
        description="TU-Berlin Extended, SAKE's zeroshot instantiation (220 seen / 30 unseen)",
        dataset_dir="TUBerlin", list_dir="zeroshot",
        train_sketch_list="png_ready_filelist_train.txt",
        train_photo_list="ImageResized_ready_filelist_train.txt",
        test_sketch_list="png_ready_filelist_test.txt",
        query_list="png_ready_filelist_zero.txt",
        gallery_list="ImageResized_ready_filelist_zero.txt",
        num_seen=220, num_unseen=30,
        # test: 10 held-out sketches per seen class.
        published=Counts(test_sketch=2200, query=2400, gallery=27989),
        unseen_list="tuberlin30.txt"),
    SplitSpec(
        name="quickdraw30",
        description="QuickDraw Extended, Doodle2Search's split (80 seen / 30 unseen)",
        dataset_dir="QuickDraw", list_dir="zeroshot",
        train_sketch_list="sketch_train.txt", train_photo_list="all_photo_train.txt",
        test_sketch_list=None,  # QuickDraw ships no test list
        query_list="sketch_zero.txt", gallery_list="all_photo_zero.txt",
        num_seen=80, num_unseen=30,
        published=Counts(query=92291, gallery=54151),
        val_per_class=50, unseen_list="quickdraw30.txt"),
    _sketchy_mini("sketchy25_mini", "zeroshot1", "sketchy25"),
    _sketchy_mini("sketchy21_mini", "zeroshot2", "sketchy21"),
    SplitSpec(
        name="synthetic",
        description="procedural shape-program benchmark written by experiments.make_synthetic",
        dataset_dir="Synthetic", list_dir="zeroshot",
        train_sketch_list="sketch_filelist_train.txt",
        train_photo_list="photo_filelist_train.txt",
        test_sketch_list="sketch_filelist_test.txt",
        query_list="sketch_filelist_zero.txt", gallery_list="photo_filelist_zero.txt",
        manifest="manifest.json",
        pretrain=PretrainSpec(
            list_dir="pretrain", train_list="photo_filelist_train.txt",
            val_list="photo_filelist_val.txt", class_file="cname_cid.txt")),
]}


def write_lines(path: str, lines: list[str]) -> None:
  """Writes list or class file lines (UTF-8, one per line)."""
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(line + "\n" for line in lines)


def write_split_lists(list_dir: str, spec: SplitSpec, lines: dict[str, list[str]],
                      seen: list[str], unseen: list[str]) -> None:
  """Writes a split's list files ({role: lines}, roles of spec.list_files()) and class files."""
  for role, list_file in spec.list_files().items():
    write_lines(os.path.join(list_dir, list_file), lines[role])
  write_lines(os.path.join(list_dir, spec.seen_class_file),
              [f"{name} {i}" for i, name in enumerate(seen)])
  write_lines(os.path.join(list_dir, spec.unseen_class_file),
              [f"{name} {i}" for i, name in enumerate(unseen)])


@dataclasses.dataclass(frozen=True)
class SplitData:
  """A loaded zero-shot split.

  train: seen-class sketches and photos; val: held-out seen-class sketches; both labelled by
  index into `seen_classes`. query (unseen sketches) and gallery (unseen photos) are labelled by
  index into `unseen_classes`. Class names are ordered by id.
  """
  name: str
  train: tuple[Record, ...]
  val: tuple[Record, ...]
  query: tuple[Record, ...]
  gallery: tuple[Record, ...]
  seen_classes: tuple[str, ...]
  unseen_classes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PretrainData:
  """A loaded photo-only classification set; labels index `classes`."""
  train: tuple[Record, ...]
  val: tuple[Record, ...]
  classes: tuple[str, ...]


def get_split(name: str) -> SplitSpec:
  """The registered split `name`; ValueError listing the known names otherwise."""
  if name not in SPLITS:
    raise ValueError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}")
  return SPLITS[name]


def read_manifest(root: str, spec: SplitSpec) -> dict:
  """The JSON manifest of a generated split (spec.manifest must be set)."""
  path = os.path.join(root, spec.dataset_dir, spec.manifest)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def expected_counts(root: str, spec: SplitSpec) -> tuple[Counts, dict[str, int | None]]:
  """(item counts, class counts by class file role "seen"/"unseen"/"pretrain") to expect."""
  if spec.manifest is None:
    return spec.published, {"seen": spec.num_seen, "unseen": spec.num_unseen, "pretrain": None}
  manifest = read_manifest(root, spec)
  counts = {f.name: manifest["counts"].get(f.name) for f in dataclasses.fields(Counts)}
  return Counts(**counts), {k: manifest["classes"].get(k) for k in ("seen", "unseen", "pretrain")}


def shipped_unseen_classes(spec: SplitSpec) -> list[str] | None:
  """The unseen classes of the split as shipped in SPLITS_DIR (None for generated splits)."""
  if spec.unseen_list is None:
    return None
  return read_class_names(os.path.join(SPLITS_DIR, spec.unseen_list))


def _read_labelled(list_file: str, dataset_dir: str, domain: int, class_file: str,
                   num_classes: int) -> list[Record]:
  """`read_list`, refusing a label that is not an id of `class_file` (num_classes names)."""
  records = read_list(list_file, dataset_dir, domain)
  for r in records:
    if not 0 <= r.label < num_classes:
      raise ListFormatError(
          f"{list_file}: label {r.label} of {r.path!r} is not an id of {class_file} "
          f"(0..{num_classes - 1})")
  return records


def hold_out_val(sketches: list[Record], per_class: int) -> tuple[list[Record], list[Record]]:
  """(train, val): val takes the first `per_class` sketches of each class in sorted path order.

  Independent of the list's line order; both outputs keep the input order.
  """
  by_class = collections.defaultdict(list)
  for r in sketches:
    by_class[r.label].append(r.path)
  val_paths = {p for paths in by_class.values() for p in sorted(paths)[:per_class]}
  return ([r for r in sketches if r.path not in val_paths],
          [r for r in sketches if r.path in val_paths])


def load_split(root: str, name: str) -> SplitData:
  """Reads split `name` (a key of SPLITS) from the data root `root`.

  Raises FileNotFoundError for a missing list or class file and ListFormatError for a malformed
  line or a label that is not an id of its class file. Image files are not opened here (see
  zsbir_jax.data.check for a full verification).
  """
  spec = get_split(name)
  dataset_dir = os.path.join(root, spec.dataset_dir)
  list_dir = os.path.join(dataset_dir, spec.list_dir)
  seen_file = os.path.join(list_dir, spec.seen_class_file)
  unseen_file = os.path.join(list_dir, spec.unseen_class_file)
  seen, unseen = read_class_names(seen_file), read_class_names(unseen_file)

  def read(role: str, domain: int, class_file: str, num_classes: int) -> list[Record]:
    return _read_labelled(os.path.join(list_dir, spec.list_files()[role]), dataset_dir, domain,
                          class_file, num_classes)

  train_sketches = read("train_sketch", SKETCH, seen_file, len(seen))
  if spec.test_sketch_list is None:
    train_sketches, val = hold_out_val(train_sketches, spec.val_per_class)
  else:
    val = read("test_sketch", SKETCH, seen_file, len(seen))
  return SplitData(
      name=name,
      train=tuple(train_sketches + read("train_photo", PHOTO, seen_file, len(seen))),
      val=tuple(val),
      query=tuple(read("query", SKETCH, unseen_file, len(unseen))),
      gallery=tuple(read("gallery", PHOTO, unseen_file, len(unseen))),
      seen_classes=tuple(seen), unseen_classes=tuple(unseen))


def load_pretrain(root: str, name: str = "synthetic") -> PretrainData:
  """Reads the photo-only pretraining set shipped with split `name` (the synthetic one)."""
  split = get_split(name)
  if split.pretrain is None:
    raise ValueError(f"split {name!r} ships no pretraining set")
  spec = split.pretrain
  dataset_dir = os.path.join(root, split.dataset_dir)
  list_dir = os.path.join(dataset_dir, spec.list_dir)
  class_file = os.path.join(list_dir, spec.class_file)
  classes = read_class_names(class_file)

  def read(list_name: str) -> tuple[Record, ...]:
    return tuple(_read_labelled(os.path.join(list_dir, list_name), dataset_dir, PHOTO,
                                class_file, len(classes)))

  return PretrainData(read(spec.train_list), read(spec.val_list), tuple(classes))
