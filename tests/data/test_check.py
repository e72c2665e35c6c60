"""Tests for the dataset check, on hand-made trees with planted faults."""
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image

from zsbir_jax import domains
from zsbir_jax.data import check
from zsbir_jax.data import lists

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SPEC = lists.SPLITS["synthetic"]


def _image(path, domain, seed):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  if domain == domains.SKETCH:
    pixels = np.full((16, 16), 255, np.uint8)
    pixels[rng.integers(16), :] = 0
    Image.fromarray(pixels, mode="L").save(path)
  else:
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path, format="JPEG")


def _write_list(path, entries):
  """entries: (relative path, label); also creates each image under the dataset dir."""
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(f"{p} {label}\n" for p, label in entries)


def _make_tree(root):
  """A clean two-seen / two-unseen / one-pretrain-class tree in the synthetic split's layout."""
  base = os.path.join(root, _SPEC.dataset_dir)
  list_dir = os.path.join(base, _SPEC.list_dir)
  pre_dir = os.path.join(base, _SPEC.pretrain.list_dir)
  os.makedirs(list_dir)
  os.makedirs(pre_dir)
  seen, unseen, pretrain = ["alarm clock", "cat"], ["bus", "hot air balloon"], ["pre 0"]
  entries = {
      "train_sketch": [(f"sketch/{c}/{k}.png", i) for i, c in enumerate(seen) for k in (0, 1)],
      "test_sketch": [(f"sketch/{c}/2.png", i) for i, c in enumerate(seen)],
      "train_photo": [(f"photo/{c}/{k}.JPEG", i) for i, c in enumerate(seen) for k in (0, 1)],
      "query": [(f"sketch/{c}/{k}.png", i) for i, c in enumerate(unseen) for k in (0, 1)],
      "gallery": [(f"photo/{c}/{k}.jpg", i) for i, c in enumerate(unseen) for k in (0, 1, 2)],
      "pretrain_train": [(f"pre/{c}/{k}.jpg", i) for i, c in enumerate(pretrain) for k in (0, 1)],
      "pretrain_val": [(f"pre/{c}/2.jpg", i) for i, c in enumerate(pretrain)],
  }
  files = dict(_SPEC.list_files())
  for role, entry in entries.items():
    domain = domains.SKETCH if "sketch" in role or role == "query" else domains.PHOTO
    for n, (rel, _) in enumerate(entry):
      _image(os.path.join(base, rel), domain, n)
    if role.startswith("pretrain"):
      name = _SPEC.pretrain.train_list if role == "pretrain_train" else _SPEC.pretrain.val_list
      _write_list(os.path.join(pre_dir, name), entry)
    else:
      _write_list(os.path.join(list_dir, files[role]), entry)
  for path, names in [(os.path.join(list_dir, _SPEC.seen_class_file), seen),
                      (os.path.join(list_dir, _SPEC.unseen_class_file), unseen),
                      (os.path.join(pre_dir, _SPEC.pretrain.class_file), pretrain)]:
    _write_list(path, [(n, i) for i, n in enumerate(names)])
  manifest = {"classes": {"seen": 2, "unseen": 2, "pretrain": 1},
              "counts": {role: len(e) for role, e in entries.items()}}
  with open(os.path.join(base, _SPEC.manifest), "w", encoding="utf-8") as f:
    json.dump(manifest, f)
  return base, list_dir


def _plant_faults(base, list_dir):
  """A missing file, a corrupt image, a class without items, a label not in the class file."""
  os.remove(os.path.join(base, "photo/hot air balloon/1.jpg"))
  with open(os.path.join(base, "sketch/cat/0.png"), "wb") as f:
    f.write(b"\x89PNG but not really")
  photos = os.path.join(list_dir, _SPEC.train_photo_list)
  with open(photos, encoding="utf-8") as f:
    text = f.read()
  with open(photos, "w", encoding="utf-8") as f:
    f.write(text.replace(".JPEG 1\n", ".JPEG 0\n"))  # "cat" loses its photos
  query = os.path.join(list_dir, _SPEC.query_list)
  with open(query, encoding="utf-8") as f:
    text = f.read()
  with open(query, "w", encoding="utf-8") as f:
    f.write(text.replace("sketch/bus/1.png 0", "sketch/bus/1.png 7"))


def test_clean_tree_has_no_problems(tmp_path):
  _make_tree(str(tmp_path))
  report = check.check_split(str(tmp_path), "synthetic")
  assert report.problems == ()
  assert {c.role: (c.found, c.expected) for c in report.lists} == {
      "train_sketch": (4, 4), "train_photo": (4, 4), "test_sketch": (2, 2), "query": (4, 4),
      "gallery": (6, 6), "pretrain_train": (2, 2), "pretrain_val": (1, 1)}
  assert "OK: no problems found" in check.format_report(report)


def test_planted_faults_are_each_reported(tmp_path):
  base, list_dir = _make_tree(str(tmp_path))
  _plant_faults(base, list_dir)
  report = check.check_split(str(tmp_path), "synthetic")
  problems = "\n".join(report.problems)
  assert len(report.problems) == 4, problems
  missing = os.path.join(os.path.abspath(base), "photo/hot air balloon/1.jpg")
  corrupt = os.path.join(os.path.abspath(base), "sketch/cat/0.png")
  assert f"gallery: 1 missing files: {missing!r}" in problems
  assert f"train_sketch: 1 unreadable images: cannot read image {corrupt!r}" in problems
  assert "train_photo: 1 classes of" in problems and "without items: 'cat'" in problems
  assert ("query: 1 labels in" in problems and "(0..1): 7 (e.g. " in problems
          and "sketch/bus/1.png" in problems)
  by_role = {c.role: c for c in report.lists}
  assert by_role["gallery"].missing == (missing,)
  assert by_role["train_sketch"].unreadable == (corrupt,)
  # Decoding in worker processes finds the same.
  assert check.check_split(str(tmp_path), "synthetic", workers=2) == report


def test_counts_class_files_and_lists(tmp_path):
  base, list_dir = _make_tree(str(tmp_path))
  with open(os.path.join(list_dir, _SPEC.gallery_list), "a", encoding="utf-8") as f:
    f.write("photo/bus/0.jpg 0\n")  # one more item than the manifest records
  with open(os.path.join(list_dir, _SPEC.unseen_class_file), "w", encoding="utf-8") as f:
    f.write("bus 0\ncat 1\n")  # "cat" is also seen
  os.remove(os.path.join(base, _SPEC.pretrain.list_dir, _SPEC.pretrain.val_list))
  with open(os.path.join(list_dir, _SPEC.test_sketch_list), "a", encoding="utf-8") as f:
    f.write("no label here\n")
  problems = "\n".join(check.check_split(str(tmp_path), "synthetic").problems)
  assert "gallery: 7 items in" in problems and "expected 6" in problems
  assert "1 classes are both seen and unseen: 'cat'" in problems
  assert "pretrain_val: list file missing" in problems
  assert "test_sketch: list file malformed" in problems and ":3: expected" in problems


def test_real_split_compares_with_published_counts_and_shipped_classes(tmp_path):
  spec = lists.SPLITS["tuberlin30"]
  base = os.path.join(tmp_path, spec.dataset_dir)
  list_dir = os.path.join(base, spec.list_dir)
  os.makedirs(list_dir)
  for role, rel in [("train_sketch", "png_ready/alarm clock/1.png"),
                    ("test_sketch", "png_ready/alarm clock/2.png"),
                    ("query", "png_ready/bus/1.png"),
                    ("train_photo", "ImageResized_ready/alarm clock/n1.JPEG"),
                    ("gallery", "ImageResized_ready/bus/n1.JPEG")]:
    _image(os.path.join(base, rel), domains.SKETCH if "png" in rel else domains.PHOTO, 0)
    _write_list(os.path.join(list_dir, spec.list_files()[role]), [(rel, 0)])
  _write_list(os.path.join(list_dir, spec.seen_class_file), [("alarm clock", 0)])
  _write_list(os.path.join(list_dir, spec.unseen_class_file), [("bus", 0), ("unicorn", 1)])
  report = check.check_split(str(tmp_path), "tuberlin30")
  problems = "\n".join(report.problems)
  assert "query: 1 items in" in problems and "expected 2,400" in problems
  assert "gallery: 1 items in" in problems and "expected 27,989" in problems
  assert "test_sketch: 1 items in" in problems and "expected 2,200" in problems
  assert "seen class file" in problems and "1 classes, expected 220" in problems
  assert "differ from the split definition" in problems and "'bottle opener'" in problems
  assert "not in the definition 'unicorn'" in problems
  assert "query: 1 classes of" in problems and "without items: 'unicorn'" in problems
  train = {c.role: c for c in report.lists}["train_sketch"]
  assert (train.found, train.expected) == (1, None)


def _run_check(root):
  return subprocess.run(
      [sys.executable, "-m", "experiments.check_dataset", f"--root={root}", "--split=synthetic",
       "--workers=1"], cwd=_REPO, capture_output=True, text=True, timeout=120, check=False)


def test_command_exit_code_and_message(tmp_path):
  clean, faulty = tmp_path / "clean", tmp_path / "faulty"
  _make_tree(str(clean))
  base, list_dir = _make_tree(str(faulty))
  _plant_faults(base, list_dir)
  ok = _run_check(clean)
  assert ok.returncode == 0, ok.stdout + ok.stderr
  assert "OK: no problems found" in ok.stdout
  bad = _run_check(faulty)
  assert bad.returncode == 1, bad.stdout + bad.stderr
  assert "4 problems:" in bad.stdout
  assert "photo/hot air balloon/1.jpg" in bad.stdout and "sketch/cat/0.png" in bad.stdout
  assert "without items: 'cat'" in bad.stdout


def test_repeated_entries_and_training_files_in_the_test_lists_are_reported(tmp_path):
  """A training list that names a file twice and a gallery that lists a training photo are
  problems; a gallery that lists one of its own photos twice (as Sketchy's extended gallery
  does) is recorded but is not."""
  base, list_dir = _make_tree(str(tmp_path))
  def append(list_name, line):
    with open(os.path.join(list_dir, list_name), "a", encoding="utf-8") as f:
      f.write(line + "\n")
  append(_SPEC.train_sketch_list, "sketch/cat/1.png 1")
  append(_SPEC.gallery_list, "photo/bus/2.jpg 0")
  append(_SPEC.gallery_list, "photo/cat/0.JPEG 1")
  report = check.check_split(str(tmp_path), "synthetic")
  problems = "\n".join(report.problems)
  absolute = lambda rel: os.path.join(os.path.abspath(base), rel)
  assert (f"train_sketch: 1 files listed more than once in "
          f"{os.path.join(list_dir, _SPEC.train_sketch_list)}: {absolute('sketch/cat/1.png')!r}"
          in problems)
  assert (f"1 files of the train_photo list are also in the gallery list: "
          f"{absolute('photo/cat/0.JPEG')!r}" in problems)
  assert "gallery: 1 files listed more than once" not in problems
  gallery = {c.role: c for c in report.lists}["gallery"]
  assert gallery.duplicated == (absolute("photo/bus/2.jpg"),)
  # The other two problems are the changed counts.
  assert len(report.problems) == 4, problems
  assert "train_sketch: 5 items in" in problems and "gallery: 8 items in" in problems


def test_quick_mode_reads_headers_and_sizes_full_mode_decodes(tmp_path):
  base, _ = _make_tree(str(tmp_path))
  assert not check.check_split(str(tmp_path), "synthetic", mode="quick").problems
  empty, header, body = (os.path.join(base, p) for p in (
      "photo/cat/0.JPEG", "sketch/bus/0.png", "photo/bus/1.jpg"))
  open(empty, "wb").close()
  for path, end in ((header, lambda data: 12),  # inside the PNG's IHDR chunk
                    (body, lambda data: data.index(b"\xff\xda") + 20)):  # into the JPEG's scan
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:end(data)])
  quick = "\n".join(check.check_split(str(tmp_path), "synthetic", mode="quick").problems)
  full = "\n".join(check.check_split(str(tmp_path), "synthetic", mode="full").problems)
  assert "empty file" in quick and header in quick and body not in quick
  assert empty in full and header in full and body in full


def test_a_passed_check_is_remembered_until_the_data_changes(tmp_path):
  base, list_dir = _make_tree(str(tmp_path / "data"))
  root, record = str(tmp_path / "data"), str(tmp_path / "run")
  config = ml_collections.ConfigDict(dict(source="files", root=root, split="synthetic",
                                          tfds_data_dir=""))

  def once(mode="full"):
    outcome = check.check_once(config, mode=mode, record_dir=record)
    assert outcome.report is None or not outcome.report.problems
    return outcome

  first = once()
  assert not first.skipped and first.mode == "full"
  assert first.describe().startswith("data check: full check of split synthetic passed in ")
  again = once("quick")  # a full check covers a quick one
  assert again.skipped and again.report is None and again.mode == "full"
  assert "skipped, a full check of split synthetic passed before" in again.describe()

  image = os.path.join(base, "photo/bus/1.jpg")
  stat = os.stat(image)
  os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
  assert not once().skipped and once().skipped
  _image(image, domains.PHOTO, seed=99)  # replaced
  assert not once().skipped and once().skipped
  with open(os.path.join(list_dir, _SPEC.seen_class_file), "a", encoding="utf-8") as f:
    f.write("\n")  # an edit that parses to the same classes
  assert not once().skipped and once().skipped

  os.remove(os.path.join(record, check.RECORD_FILE))
  assert not once("quick").skipped and once("quick").skipped
  assert not once("full").skipped  # a quick check does not cover a full one

  with open(image, "rb") as f:
    data = f.read()
  with open(image, "wb") as f:
    f.write(data[:len(data) // 2])
  for _ in range(2):  # a failed check is not remembered
    outcome = check.check_once(config, mode="full", record_dir=record)
    assert not outcome.skipped and outcome.report.problems
    assert "failed" in outcome.describe()
