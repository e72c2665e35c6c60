"""Tests for SAKE list / class file parsing and the split registry."""
import os
import random

import pytest

from zsbir_jax import domains
from zsbir_jax.data import lists


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return str(path)


def test_read_list_label_is_last_token_and_path_keeps_spaces(tmp_path):
  list_file = _write(tmp_path / "l.txt", (
      "png_ready/alarm clock/141.png 2\n"
      "\n"
      "ImageResized_ready/bottle opener/n123_4.JPEG 17\r\n"
      "   \n"
      "images/bat/image_01353.jpg\t0\n"
      "a  b/two  spaces.png 3\n"))
  records = lists.read_list(list_file, str(tmp_path / "root"), domains.PHOTO)
  root = os.path.abspath(tmp_path / "root")
  assert records == [
      lists.Record(os.path.join(root, "png_ready/alarm clock/141.png"), 2, domains.PHOTO),
      lists.Record(os.path.join(root, "ImageResized_ready/bottle opener/n123_4.JPEG"), 17,
                   domains.PHOTO),
      lists.Record(os.path.join(root, "images/bat/image_01353.jpg"), 0, domains.PHOTO),
      lists.Record(os.path.join(root, "a  b/two  spaces.png"), 3, domains.PHOTO),
  ]
  assert all(os.path.isabs(r.path) for r in records)


def test_read_list_agrees_with_sake_reference_parsing(tmp_path):
  # SAKE's reader: path = ' '.join(tokens[:-1]), label = int(tokens[-1]); identical on lines
  # whose paths have single spaces.
  rng = random.Random(0)
  words = ["alarm", "clock", "teddy-bear", "mouse", "(animal)", "x.JPEG", "y.jpg", "z.png"]
  lines = [f"{' '.join(rng.choices(words, k=rng.randint(1, 4)))} {rng.randint(0, 300)}"
           for _ in range(200)]
  list_file = _write(tmp_path / "l.txt", "\n".join(lines) + "\n")
  got = lists.read_list(list_file, "/r", domains.SKETCH)
  want = [(os.path.join("/r", " ".join(l.split()[:-1])), int(l.split()[-1])) for l in lines]
  assert [(r.path, r.label) for r in got] == want
  assert {r.domain for r in got} == {domains.SKETCH}


@pytest.mark.parametrize("bad", ["just_a_path.png", "a/b.png x", "a/b.png -1", "a/b.png 1.0",
                                 "a/b.png ²"])
def test_read_list_malformed_line_names_file_and_line(tmp_path, bad):
  list_file = _write(tmp_path / "bad list.txt", f"a/ok.png 0\n\n{bad}\n")
  with pytest.raises(lists.ListFormatError, match=r"bad list\.txt:3: .*" + "expected"):
    lists.read_list(list_file, str(tmp_path), domains.SKETCH)


def test_read_class_names_orders_by_id_and_keeps_spaces(tmp_path):
  class_file = _write(tmp_path / "c.txt",
                      "hot air balloon 2\nbanana 0\n\nbottle opener 1\nmouse (animal) 3\n")
  assert lists.read_class_names(class_file) == [
      "banana", "bottle opener", "hot air balloon", "mouse (animal)"]


@pytest.mark.parametrize("text,message", [
    ("a 0\nb 0\n", r"c\.txt:2: id 0 already used by 'a'"),
    ("a 0\nb 2\n", r"id 1 is missing"),
    ("a 0\na 1\n", r"'a' appears more than once"),
    ("a 0\nb\n", r"c\.txt:2: expected '<class name>"),
])
def test_read_class_names_errors(tmp_path, text, message):
  class_file = _write(tmp_path / "c.txt", text)
  with pytest.raises(lists.ListFormatError, match=message):
    lists.read_class_names(class_file)


def test_shipped_unseen_lists_have_published_sizes():
  sizes = {name: len(lists.shipped_unseen_classes(lists.SPLITS[name]))
           for name in ("sketchy25", "sketchy21", "tuberlin30", "quickdraw30")}
  assert sizes == {"sketchy25": 25, "sketchy21": 21, "tuberlin30": 30, "quickdraw30": 30}
  for name in sizes:
    assert lists.SPLITS[name].num_unseen == sizes[name]
  tuberlin = lists.shipped_unseen_classes(lists.SPLITS["tuberlin30"])
  assert tuberlin[6] == "bottle opener" and "hot air balloon" in tuberlin
  assert lists.shipped_unseen_classes(lists.SPLITS["sketchy25"])[12] == "teddy_bear"
  assert lists.shipped_unseen_classes(lists.SPLITS["synthetic"]) is None


def test_registry_published_counts():
  s25, s21 = lists.SPLITS["sketchy25"], lists.SPLITS["sketchy21"]
  assert (s25.published.query, s25.published.gallery) == (15229, 17101)
  assert (s25.dataset_dir, s25.list_dir, s21.list_dir) == ("Sketchy", "zeroshot1", "zeroshot2")
  assert (s21.published.query, s21.published.gallery) == (12694, 12553)
  t30, q30 = lists.SPLITS["tuberlin30"], lists.SPLITS["quickdraw30"]
  assert (t30.published.query, t30.published.gallery) == (2400, 27989)
  assert (q30.published.query, q30.published.gallery) == (92291, 54151)
  assert q30.test_sketch_list is None and "test_sketch" not in q30.list_files()
  with pytest.raises(ValueError, match="unknown split 'sketchy26'.*sketchy25"):
    lists.get_split("sketchy26")


def _tiny_root(tmp_path, spec, seen, unseen, per_class, test_per_class=0):
  """Writes list and class files (no images) for `spec` under tmp_path."""
  list_dir = tmp_path / spec.dataset_dir / spec.list_dir
  _write(list_dir / spec.seen_class_file, "".join(f"{n} {i}\n" for i, n in enumerate(seen)))
  _write(list_dir / spec.unseen_class_file, "".join(f"{n} {i}\n" for i, n in enumerate(unseen)))

  def lines(classes, prefix, ext, indices):
    return "".join(f"{prefix}/{n}/{k}.{ext} {i}\n" for i, n in enumerate(classes) for k in indices)

  _write(list_dir / spec.train_sketch_list, lines(seen, "sk", "png", range(per_class)))
  _write(list_dir / spec.train_photo_list, lines(seen, "ph", "JPEG", range(per_class)))
  if spec.test_sketch_list:
    _write(list_dir / spec.test_sketch_list,
           lines(seen, "sk", "png", range(per_class, per_class + test_per_class)))
  _write(list_dir / spec.query_list, lines(unseen, "sk", "png", range(per_class)))
  _write(list_dir / spec.gallery_list, lines(unseen, "ph", "jpg", range(per_class)))
  return list_dir


def test_load_split_with_test_list(tmp_path):
  spec = lists.SPLITS["tuberlin30"]
  seen, unseen = ["alarm clock", "pig", "cup"], ["bottle opener", "bus"]
  _tiny_root(tmp_path, spec, seen, unseen, per_class=4, test_per_class=2)
  data = lists.load_split(str(tmp_path), "tuberlin30")
  assert data.seen_classes == tuple(seen) and data.unseen_classes == tuple(unseen)
  assert len(data.train) == 3 * 4 * 2 and len(data.val) == 3 * 2
  assert len(data.query) == len(data.gallery) == 2 * 4
  sketches = [r for r in data.train if r.domain == domains.SKETCH]
  photos = [r for r in data.train if r.domain == domains.PHOTO]
  assert len(sketches) == len(photos) == 12 and photos[0].path.endswith(".JPEG")
  assert {r.domain for r in data.val + data.query} == {domains.SKETCH}
  assert {r.domain for r in data.gallery} == {domains.PHOTO}
  base = os.path.abspath(tmp_path / "TUBerlin")
  assert data.val[0] == lists.Record(os.path.join(base, "sk/alarm clock/4.png"), 0, domains.SKETCH)
  assert data.query[-1] == lists.Record(os.path.join(base, "sk/bus/3.png"), 1, domains.SKETCH)
  assert not {r.path for r in data.val} & {r.path for r in data.train}


def test_load_split_holds_out_val_without_test_list(tmp_path):
  spec = lists.SPLITS["quickdraw30"]
  per_class = spec.val_per_class + 7
  seen, unseen = ["cat", "dog"], ["bat", "cow", "zebra"]
  list_dir = _tiny_root(tmp_path, spec, seen, unseen, per_class=per_class)
  data = lists.load_split(str(tmp_path), "quickdraw30")
  train_sketches = [r for r in data.train if r.domain == domains.SKETCH]
  assert len(data.val) == 2 * spec.val_per_class
  assert len(train_sketches) == 2 * 7
  for label in (0, 1):
    paths = sorted(r.path for r in train_sketches + list(data.val) if r.label == label)
    assert {r.path for r in data.val if r.label == label} == set(paths[:spec.val_per_class])
  # The held-out set does not depend on the order of the list's lines.
  train_list = list_dir / spec.train_sketch_list
  lines = train_list.read_text().splitlines()
  random.Random(1).shuffle(lines)
  train_list.write_text("\n".join(lines) + "\n")
  shuffled = lists.load_split(str(tmp_path), "quickdraw30")
  assert set(shuffled.val) == set(data.val) and set(shuffled.train) == set(data.train)


def test_load_split_rejects_label_outside_class_file(tmp_path):
  spec = lists.SPLITS["tuberlin30"]
  list_dir = _tiny_root(tmp_path, spec, ["a", "b"], ["c"], per_class=1, test_per_class=1)
  with open(list_dir / spec.gallery_list, "a", encoding="utf-8") as f:
    f.write("ph/d/0.jpg 1\n")
  with pytest.raises(lists.ListFormatError,
                     match=r"ImageResized_ready_filelist_zero\.txt: label 1 of .*ph/d/0\.jpg"):
    lists.load_split(str(tmp_path), "tuberlin30")


def test_load_split_missing_list_file(tmp_path):
  spec = lists.SPLITS["tuberlin30"]
  list_dir = _tiny_root(tmp_path, spec, ["a"], ["c"], per_class=1, test_per_class=1)
  os.remove(list_dir / spec.query_list)
  with pytest.raises(FileNotFoundError, match="png_ready_filelist_zero.txt"):
    lists.load_split(str(tmp_path), "tuberlin30")
