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
"""
import collections
import dataclasses
import multiprocessing
import os

from zsbir_jax.domains import PHOTO, SKETCH
from zsbir_jax.data import images
from zsbir_jax.data import lists


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
  lists: tuple[ListCheck, ...]
  problems: tuple[str, ...]


def _unreadable_reason(path: str) -> str | None:
  """Why `path` does not decode, or None if it does."""
  try:
    images.load_rgb(path)
  except images.BadImageError as e:
    return str(e)
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


def check_split(root: str, name: str, *, workers: int = 1, max_examples: int = 5) -> Report:
  """Checks split `name` under data root `root`; decodes every image with `workers` processes."""
  spec = lists.get_split(name)
  dataset_dir = os.path.join(root, spec.dataset_dir)
  list_dir = os.path.join(dataset_dir, spec.list_dir)
  problems: list[str] = []

  try:
    counts, num_classes = lists.expected_counts(root, spec)
  except (OSError, ValueError, KeyError) as e:
    problems.append(f"manifest {os.path.join(dataset_dir, spec.manifest)} unreadable: {e!r}")
    counts, num_classes = lists.Counts(), {"seen": None, "unseen": None, "pretrain": None}

  seen_file = os.path.join(list_dir, spec.seen_class_file)
  unseen_file = os.path.join(list_dir, spec.unseen_class_file)
  classes = {"seen": _read_classes(seen_file, "seen", num_classes["seen"], problems),
             "unseen": _read_classes(unseen_file, "unseen", num_classes["unseen"], problems)}
  class_files = {"seen": seen_file, "unseen": unseen_file}
  # (role, list file, class file role) for every list of the split.
  targets = [(role, os.path.join(list_dir, f), "unseen" if role in ("query", "gallery") else "seen")
             for role, f in spec.list_files().items()]
  if spec.pretrain is not None:
    pretrain_dir = os.path.join(dataset_dir, spec.pretrain.list_dir)
    class_files["pretrain"] = os.path.join(pretrain_dir, spec.pretrain.class_file)
    classes["pretrain"] = _read_classes(
        class_files["pretrain"], "pretrain", num_classes["pretrain"], problems)
    targets += [
        ("pretrain_train", os.path.join(pretrain_dir, spec.pretrain.train_list), "pretrain"),
        ("pretrain_val", os.path.join(pretrain_dir, spec.pretrain.val_list), "pretrain")]

  _check_class_sets(spec, classes, unseen_file, max_examples, problems)

  records_by_role: dict[str, list[lists.Record]] = {}
  for role, list_file, _ in targets:
    try:
      domain = SKETCH if role in ("train_sketch", "test_sketch", "query") else PHOTO
      records_by_role[role] = lists.read_list(list_file, dataset_dir, domain)
    except FileNotFoundError:
      problems.append(f"{role}: list file missing: {list_file}")
    except (lists.ListFormatError, UnicodeDecodeError) as e:
      problems.append(f"{role}: list file malformed: {e}")

  paths = sorted({r.path for recs in records_by_role.values() for r in recs})
  exists = {p: os.path.isfile(p) for p in paths}
  unreadable = _decode_all([p for p in paths if exists[p]], workers)
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
  return Report(name, root, tuple(checks), tuple(problems))


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


def _decode_all(paths: list[str], workers: int) -> dict[str, str]:
  """{path: reason} of the images among `paths` that do not decode, with `workers` processes."""
  if workers > 1:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
      reasons = pool.map(_unreadable_reason, paths, chunksize=64)
  else:
    reasons = [_unreadable_reason(p) for p in paths]
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


def format_report(report: Report) -> str:
  """A table of the per-list findings followed by the problems (or "OK")."""
  lines = [f"split {report.split} under {report.root}",
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
