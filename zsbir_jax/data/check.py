"""Verification of a downloaded (or generated) dataset root against a split's definition.

For every list file of the split: the item count against the published count (for a generated
split, the count its generator recorded in the manifest), missing files, images that do not
decode, classes of the class file without items, labels that are not ids of the class file, and
entries listed more than once (a problem in every list but the query and gallery lists, where
duplicates are part of the standard protocols: Sketchy's extended gallery lists photos twice).
Also: files of a training list (train_sketch, train_photo, test_sketch) that are also in the
query or gallery list (seen-class training data leaking into the unseen-class test), class files
that are missing, malformed or of the wrong size, seen classes that are also unseen, and unseen
classes that differ from the split definition shipped in data/splits/.

Two modes: "full" decodes every image (minutes on a real dataset), "quick" reads only the
headers and sizes (an empty or header-truncated file fails it, a truncated body does not).
`check_once` remembers a passed check by a fingerprint of the split's list, class and manifest
files (their contents) and of its images (sizes and modification times), so that a training
run started again on unchanged data does not repeat it.

A TFDS build (data.source='tfds', `check_tfds`) is checked from what it holds, read through
source.open_split: the same class, label, duplicate and leak checks on the build's metadata
(class names, labels, paths), every list in its domain, the item counts against the published
ones (generated splits record theirs in the data root's manifest, which the build does not
carry: n/a), and in "full" mode every stored image decoded as training decodes it; "quick" reads
no image (the build decoded each once when it was written). Its fingerprint is the build's
files (names, sizes, modification times).
"""
import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import time

import numpy as np
from PIL import Image

from zsbir_jax.domains import PHOTO, SKETCH
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source

MODES = ("quick", "full")
RECORD_FILE = "data_check.json"
# Part of every fingerprint: a change of what the check verifies invalidates the records.
_FINGERPRINT_VERSION = 1


# Lists of seen-class training (and validation) data, and of the unseen-class test.
TRAIN_ROLES = ("train_sketch", "train_photo", "test_sketch")
TEST_ROLES = ("query", "gallery")


@dataclasses.dataclass(frozen=True)
class ListCheck:
  """The findings for one list file; `found` is None where the file could not be read."""
  role: str
  list_file: str
  found: int | None
  expected: int | None
  missing: tuple[str, ...]
  unreadable: tuple[str, ...]
  duplicated: tuple[str, ...] = ()  # paths listed more than once


@dataclasses.dataclass(frozen=True)
class Report:
  """Per-list findings and every problem, one line each; the root is fine iff no problems."""
  split: str
  root: str
  mode: str
  lists: tuple[ListCheck, ...]
  problems: tuple[str, ...]


def _unreadable_reason(path: str, mode: str) -> str | None:
  """Why `path` fails the check of `mode` (decode, or header and size), or None if it passes."""
  if mode == "full":
    try:
      images.load_rgb(path)
    except images.BadImageError as e:
      return str(e)
    return None
  try:
    if not os.path.getsize(path):
      return f"{path!r}: empty file"
    with Image.open(path) as image:
      if not all(image.size):
        return f"{path!r}: header gives size {image.size}"
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    return f"{path!r}: header unreadable: {type(e).__name__}: {e}"
  return None


def _examples(items: list[str], max_examples: int) -> str:
  shown = ", ".join(repr(x) for x in items[:max_examples])
  return shown + (", ..." if len(items) > max_examples else "")


def _read_classes(path: str, role: str, expected: int | None,
                  problems: list[str]) -> list[str] | None:
  """The class names in `path`, recording problems (None if unreadable)."""
  try:
    names = lists.read_class_names(path)
  except FileNotFoundError:
    problems.append(f"{role} class file missing: {path}")
    return None
  except lists.ListFormatError as e:
    problems.append(f"{role} class file malformed: {e}")
    return None
  if expected is not None and len(names) != expected:
    problems.append(f"{role} class file {path}: {len(names)} classes, expected {expected}")
  return names


@dataclasses.dataclass(frozen=True)
class _SplitFiles:
  """Where a split's files are: the manifest, class files by role, (role, list, class role)."""
  dataset_dir: str
  manifest: str | None
  class_files: dict[str, str]
  targets: list[tuple[str, str, str]]


def _split_files(root: str, spec: lists.SplitSpec) -> _SplitFiles:
  dataset_dir = os.path.join(root, spec.dataset_dir)
  list_dir = os.path.join(dataset_dir, spec.list_dir)
  class_files = {"seen": os.path.join(list_dir, spec.seen_class_file),
                 "unseen": os.path.join(list_dir, spec.unseen_class_file)}
  targets = [(role, os.path.join(list_dir, f), "unseen" if role in ("query", "gallery") else "seen")
             for role, f in spec.list_files().items()]
  if spec.pretrain is not None:
    pretrain_dir = os.path.join(dataset_dir, spec.pretrain.list_dir)
    class_files["pretrain"] = os.path.join(pretrain_dir, spec.pretrain.class_file)
    targets += [
        ("pretrain_train", os.path.join(pretrain_dir, spec.pretrain.train_list), "pretrain"),
        ("pretrain_val", os.path.join(pretrain_dir, spec.pretrain.val_list), "pretrain")]
  manifest = os.path.join(dataset_dir, spec.manifest) if spec.manifest else None
  return _SplitFiles(dataset_dir, manifest, class_files, targets)


def _list_domain(role: str) -> int:
  return SKETCH if role in ("train_sketch", "test_sketch", "query") else PHOTO


def check_split(root: str, name: str, *, mode: str = "full", workers: int = 1,
                max_examples: int = 5) -> Report:
  """Checks split `name` under data root `root`, each image by `mode`, with `workers` processes."""
  if mode not in MODES:
    raise ValueError(f"unknown check mode {mode!r}; choose one of {MODES}")
  spec = lists.get_split(name)
  files = _split_files(root, spec)
  dataset_dir, class_files, targets = files.dataset_dir, files.class_files, files.targets
  problems: list[str] = []

  try:
    counts, num_classes = lists.expected_counts(root, spec)
  except (OSError, ValueError, KeyError) as e:
    problems.append(f"manifest {files.manifest} unreadable: {e!r}")
    counts, num_classes = lists.Counts(), {"seen": None, "unseen": None, "pretrain": None}

  unseen_file = class_files["unseen"]
  classes = {role: _read_classes(path, role, num_classes[role], problems)
             for role, path in class_files.items()}
  _check_class_sets(spec, classes, unseen_file, max_examples, problems)

  records_by_role: dict[str, list[lists.Record]] = {}
  for role, list_file, _ in targets:
    try:
      records_by_role[role] = lists.read_list(list_file, dataset_dir, _list_domain(role))
    except FileNotFoundError:
      problems.append(f"{role}: list file missing: {list_file}")
    except (lists.ListFormatError, UnicodeDecodeError) as e:
      problems.append(f"{role}: list file malformed: {e}")

  paths = sorted({r.path for recs in records_by_role.values() for r in recs})
  exists = {p: os.path.isfile(p) for p in paths}
  unreadable = _check_images([p for p in paths if exists[p]], mode, workers)
  checks = []
  for role, list_file, class_role in targets:
    expected = getattr(counts, role)
    if role not in records_by_role:
      checks.append(ListCheck(role, list_file, None, expected, (), ()))
      continue
    checks.append(_check_list(role, list_file, records_by_role[role], expected, exists,
                              unreadable, max_examples, problems))
    if classes[class_role] is not None:
      _check_labels(role, list_file, records_by_role[role], classes[class_role],
                    class_files[class_role], max_examples, problems)
  for train_role in TRAIN_ROLES:
    for test_role in TEST_ROLES:
      if train_role in records_by_role and test_role in records_by_role:
        both = sorted({os.path.normpath(r.path) for r in records_by_role[train_role]}
                      & {os.path.normpath(r.path) for r in records_by_role[test_role]})
        if both:
          problems.append(f"{len(both):,} files of the {train_role} list are also in the "
                          f"{test_role} list: {_examples(both, max_examples)}")
  return Report(name, root, mode, tuple(checks), tuple(problems))


def _check_class_sets(spec: lists.SplitSpec, classes: dict[str, list[str] | None],
                      unseen_file: str, max_examples: int, problems: list[str]) -> None:
  """Seen and unseen classes must be disjoint, and the unseen ones the split definition's."""
  if classes["seen"] is not None and classes["unseen"] is not None:
    both = sorted(set(classes["seen"]) & set(classes["unseen"]))
    if both:
      problems.append(f"{len(both)} classes are both seen and unseen: "
                      f"{_examples(both, max_examples)}")
  shipped = lists.shipped_unseen_classes(spec)
  if shipped is not None and classes["unseen"] is not None:
    absent = sorted(set(shipped) - set(classes["unseen"]))
    extra = sorted(set(classes["unseen"]) - set(shipped))
    if absent or extra:
      problems.append(
          f"unseen classes of {unseen_file} differ from the split definition "
          f"{os.path.join(lists.SPLITS_DIR, spec.unseen_list)}: "
          f"absent {_examples(absent, max_examples)}; not in the definition "
          f"{_examples(extra, max_examples)}")


def _check_images(paths: list[str], mode: str, workers: int) -> dict[str, str]:
  """{path: reason} of the images among `paths` that fail `mode`, with `workers` processes."""
  reason = functools.partial(_unreadable_reason, mode=mode)
  if workers > 1:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
      reasons = pool.map(reason, paths, chunksize=64)
  else:
    reasons = [reason(p) for p in paths]
  return {p: r for p, r in zip(paths, reasons) if r is not None}


def _check_list(role: str, list_file: str, records: list[lists.Record], expected: int | None,
                exists: dict[str, bool], unreadable: dict[str, str], max_examples: int,
                problems: list[str]) -> ListCheck:
  """The ListCheck of one read list: its length against `expected`, missing and bad files, and
  files listed more than once (a problem outside the query and gallery lists)."""
  missing = [r.path for r in records if not exists[r.path]]
  bad = [r.path for r in records if r.path in unreadable]
  if expected is not None and len(records) != expected:
    problems.append(f"{role}: {len(records):,} items in {list_file}, expected {expected:,}")
  if missing:
    problems.append(f"{role}: {len(missing):,} missing files: {_examples(missing, max_examples)}")
  if bad:
    problems.append(f"{role}: {len(bad):,} unreadable images: "
                    f"{'; '.join(unreadable[p] for p in bad[:max_examples])}")
  listed = collections.Counter(os.path.normpath(r.path) for r in records)
  duplicated = sorted(p for p, n in listed.items() if n > 1)
  if duplicated and role not in TEST_ROLES:
    problems.append(f"{role}: {len(duplicated):,} files listed more than once in {list_file}: "
                    f"{_examples(duplicated, max_examples)}")
  return ListCheck(role, list_file, len(records), expected, tuple(missing), tuple(bad),
                   tuple(duplicated))


def _check_labels(role: str, list_file: str, records: list[lists.Record], names: list[str],
                  class_file: str, max_examples: int, problems: list[str]) -> None:
  """Every class of `class_file` has items, and every label is one of its ids."""
  per_label = collections.Counter(r.label for r in records)
  empty = [n for i, n in enumerate(names) if per_label[i] == 0]
  if empty:
    problems.append(f"{role}: {len(empty)} classes of {class_file} without items: "
                    f"{_examples(empty, max_examples)}")
  unknown = sorted(label for label in per_label if label >= len(names))
  if unknown:
    example = {r.label: r.path for r in records if r.label >= len(names)}
    problems.append(
        f"{role}: {len(unknown)} labels in {list_file} are not ids of {class_file} "
        f"(0..{len(names) - 1}): "
        + ", ".join(f"{label} (e.g. {example[label]!r})" for label in unknown[:max_examples]))


def _tfds_expected(spec: lists.SplitSpec, num_val: int) -> dict[str, int | None]:
  """Published counts per list of a TFDS build (None for generated splits: their manifest is
  in the data root); without a test list, val is held out of the train sketch list."""
  if spec.manifest is not None:
    return {}
  counts = spec.published
  if spec.test_sketch_list is not None:
    train_sketch, val = counts.train_sketch, counts.test_sketch
  else:
    val = spec.val_per_class * spec.num_seen if spec.num_seen else None
    train_sketch = (counts.train_sketch - num_val
                    if counts.train_sketch is not None else None)
  return {"train_sketch": train_sketch, "train_photo": counts.train_photo, "val": val,
          "query": counts.query, "gallery": counts.gallery}


def _undecodable(items, mode: str, workers: int) -> dict[str, str]:
  """{path: reason} of the items of a source whose stored image does not decode ("full")."""
  if mode != "full":
    return {}

  def reason(i: int) -> str | None:
    try:
      items[i]
    except images.BadImageError as e:
      return str(e)
    return None

  with concurrent.futures.ThreadPoolExecutor(max(workers, 1)) as pool:
    reasons = list(pool.map(reason, range(len(items))))
  return {items.paths[i]: r for i, r in enumerate(reasons) if r is not None}


def check_tfds(split: source.Split, where: str, *, mode: str = "full", workers: int = 1,
               max_examples: int = 5) -> Report:
  """Checks a split's TFDS build (source.open_split of data.source='tfds'), each image by `mode`.

  `where` names the build in the report (its data directory); `workers` threads decode.
  """
  if mode not in MODES:
    raise ValueError(f"unknown check mode {mode!r}; choose one of {MODES}")
  spec = lists.get_split(split.name)
  problems: list[str] = []
  classes = {"seen": list(split.seen_classes), "unseen": list(split.unseen_classes)}
  for role, names in classes.items():
    expected = getattr(spec, f"num_{role}")
    if expected is not None and spec.manifest is None and len(names) != expected:
      problems.append(f"{role} classes of the build: {len(names)}, expected {expected}")
  _check_class_sets(spec, classes, f"the build's unseen classes ({where})", max_examples,
                    problems)
  train = split.train
  parts = {"train_sketch": (source.Selection((train, np.flatnonzero(train.domains == SKETCH))),
                            "seen"),
           "train_photo": (source.Selection((train, np.flatnonzero(train.domains == PHOTO))),
                           "seen"),
           "val": (split.val, "seen"), "query": (split.query, "unseen"),
           "gallery": (split.gallery, "unseen")}
  expected = _tfds_expected(spec, len(split.val))
  checks, records_by_role = [], {}
  for role, (items, class_role) in parts.items():
    name = f"{source.TFDS_NAME}/{split.name} {role}"
    domain = _list_domain("test_sketch" if role == "val" else role)
    wrong = [p for p, d in zip(items.paths, items.domains) if d != domain]
    if wrong:
      problems.append(f"{role}: {len(wrong):,} items of the other domain: "
                      f"{_examples(wrong, max_examples)}")
    records = [lists.Record(p, int(label), int(d))
               for p, label, d in zip(items.paths, items.labels, items.domains)]
    records_by_role[role] = records
    checks.append(_check_list(role, name, records, expected.get(role),
                              dict.fromkeys(items.paths, True),
                              _undecodable(items, mode, workers), max_examples, problems))
    _check_labels(role, name, records, classes[class_role],
                  f"the build's {class_role} classes", max_examples, problems)
  for train_role in ("train_sketch", "train_photo", "val"):
    for test_role in TEST_ROLES:
      both = sorted({os.path.normpath(r.path) for r in records_by_role[train_role]}
                    & {os.path.normpath(r.path) for r in records_by_role[test_role]})
      if both:
        problems.append(f"{len(both):,} files of the {train_role} list are also in the "
                        f"{test_role} list: {_examples(both, max_examples)}")
  return Report(split.name, where, mode, tuple(checks), tuple(problems))


def format_report(report: Report) -> str:
  """A table of the per-list findings followed by the problems (or "OK")."""
  lines = [f"split {report.split} under {report.root} ({report.mode} check)",
           f"{'list':<15}{'found':>10}{'expected':>10}{'missing':>9}{'unreadable':>12}"
           f"{'repeated':>10}  file"]
  for c in report.lists:
    found = "-" if c.found is None else f"{c.found:,}"
    expected = "n/a" if c.expected is None else f"{c.expected:,}"
    lines.append(f"{c.role:<15}{found:>10}{expected:>10}{len(c.missing):>9}"
                 f"{len(c.unreadable):>12}{len(c.duplicated):>10}  {c.list_file}")
  if report.problems:
    lines.append(f"{len(report.problems)} problems:")
    lines += [f"  - {p}" for p in report.problems]
  else:
    lines.append("OK: no problems found")
  return "\n".join(lines)


def fingerprint(root: str, name: str) -> str:
  """A digest of what a check of split `name` reads: its list, class and manifest files (their
  bytes) and the size and modification time of every image they list.

  Stat-only for the images (seconds for 150,000 files): replacing or touching an image changes
  it, as does any edit of a list.
  """
  spec = lists.get_split(name)
  files = _split_files(root, spec)
  digest = hashlib.sha256(json.dumps([_FINGERPRINT_VERSION, name, os.path.abspath(root)]).encode())
  text_files = [files.manifest] if files.manifest else []
  text_files += list(files.class_files.values()) + [f for _, f, _ in files.targets]
  paths = set()
  for path in text_files:
    try:
      with open(path, "rb") as f:
        content = f.read()
    except OSError:
      content = b"<unreadable>"
    digest.update(f"\0{path}\0{len(content)}\0".encode() + content)
  for role, list_file, _ in files.targets:
    try:
      paths.update(r.path for r in lists.read_list(list_file, files.dataset_dir,
                                                   _list_domain(role)))
    except (OSError, ValueError):
      pass  # the list's bytes are in the digest already
  for path in sorted(paths):
    try:
      stat = os.stat(path)
      digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    except OSError:
      digest.update(f"\0{path}\0<missing>".encode())
  return digest.hexdigest()


def fingerprint_tfds(build_dir: str, name: str) -> str:
  """A digest of the files of a TFDS build of split `name` under `build_dir` (every version):
  their paths, sizes and modification times."""
  digest = hashlib.sha256(json.dumps([_FINGERPRINT_VERSION, "tfds", name,
                                      os.path.abspath(build_dir)]).encode())
  for directory, subdirs, files in os.walk(build_dir):
    subdirs.sort()
    for path in sorted(os.path.join(directory, f) for f in files):
      stat = os.stat(path)
      digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What `check_once` did: `report` is None when a remembered check was still valid."""
  split: str
  source: str
  mode: str
  skipped: bool
  seconds: float
  report: Report | None

  def describe(self) -> str:
    """One line for the log: which check ran (and of what), or why none did, how long it took."""
    what = f"split {self.split}"
    if self.source == "tfds":
      what += (" (its TFDS build: metadata, classes, labels, counts and domains; "
               + ("every stored image decoded)" if self.mode == "full" else "no image read)"))
    if self.skipped:
      return (f"data check: skipped, a {self.mode} check of {what} passed before and "
              f"its fingerprint still matches ({self.seconds:.1f} s to compare)")
    result = "failed" if self.report.problems else "passed"
    return f"data check: {self.mode} check of {what} {result} in {self.seconds:.1f} s"


def check_once(data, *, mode: str, record_dir: str | None, workers: int = 1,
               max_examples: int = 5) -> Outcome:
  """The check of a config's split (`check_split`, or `check_tfds` for data.source='tfds'),
  unless `record_dir` remembers a passed check that still holds.

  `data`: a config's data block (source, split, root, tfds_data_dir; see source.open_split).
  A passed check is recorded in `<record_dir>/data_check.json` with the fingerprint taken before
  it ran; a later call skips the check if the fingerprint is unchanged and the recorded mode is
  at least as thorough as `mode` (a full check covers a quick one). `record_dir=None` always
  checks and records nothing.
  """
  start = time.perf_counter()
  record_path = os.path.join(record_dir, RECORD_FILE) if record_dir else None
  if data.source == "tfds":
    where = os.path.join(data.tfds_data_dir, source.TFDS_NAME, data.split)
    take_fingerprint = lambda: fingerprint_tfds(where, data.split)
    run = lambda: check_tfds(source.open_split(data), where, mode=mode, workers=workers,
                             max_examples=max_examples)
  else:
    where = data.root
    take_fingerprint = lambda: fingerprint(data.root, data.split)
    run = lambda: check_split(data.root, data.split, mode=mode, workers=workers,
                              max_examples=max_examples)
  digest = take_fingerprint() if record_path else None
  if record_path and os.path.isfile(record_path):
    with open(record_path, encoding="utf-8") as f:
      record = json.load(f)
    if (record.get("fingerprint") == digest
        and MODES.index(record["mode"]) >= MODES.index(mode)):
      return Outcome(data.split, data.source, record["mode"], True,
                     time.perf_counter() - start, None)
  report = run()
  if record_path and not report.problems:
    os.makedirs(record_dir, exist_ok=True)
    partial = f"{record_path}.{os.getpid()}.tmp"  # atomic: processes may share the directory
    with open(partial, "w", encoding="utf-8") as f:
      json.dump({"split": data.split, "source": data.source, "data": os.path.abspath(where),
                 "mode": mode, "fingerprint": digest}, f, indent=2)
    os.replace(partial, record_path)
  return Outcome(data.split, data.source, mode, False, time.perf_counter() - start, report)
