"""TFDS builder round trip on a tiny synthetic benchmark: build ArrayRecord files, read them back
with tfds.data_source (via source.TfdsSource) and compare with the list files' own reading.

Needs the `tfds` extra (tensorflow, tensorflow_datasets), which the README set-up and CI install.
"""
import dataclasses
import glob
import os
import re

import ml_collections
import numpy as np
import pytest

import tensorflow_datasets as tfds  # the `tfds` extra, installed by the README set-up and CI

from zsbir_jax import domains
from zsbir_jax.data import augment
from zsbir_jax.data import check
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import source
from zsbir_jax.data import synthetic
from zsbir_jax.data import tfds_builders
# pylint: enable=g-import-not-at-top,wrong-import-position

TINY = synthetic.SyntheticConfig(
    image_size=24, num_seen=3, num_unseen=2, sketches_per_class=3, test_sketches_per_class=1,
    photos_per_class=2, num_pretrain=2, pretrain_photos_per_class=3, pretrain_val_per_class=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[str, str]:
  root = str(tmp_path_factory.mktemp("root"))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  synthetic.generate(root, TINY)
  tfds_builders.build("synthetic", root, data_dir)
  return root, data_dir


def test_every_split_reads_back_as_the_lists_read_it(built):
  root, data_dir = built
  split = lists.load_split(root, "synthetic")
  pretrain = lists.load_pretrain(root, "synthetic")
  expected = {"train": split.train, "val": split.val, "query": split.query,
              "gallery": split.gallery, "pretrain_train": pretrain.train,
              "pretrain_val": pretrain.val}
  for name, records in expected.items():
    ours, ref = source.TfdsSource("zsbir/synthetic", name, data_dir), source.RecordSource(records)
    assert len(ours) == len(ref) > 0, name
    np.testing.assert_array_equal(ours.labels, ref.labels)
    np.testing.assert_array_equal(ours.domains, ref.domains)
    assert ours.paths == tuple(os.path.relpath(p, root) for p in ref.paths)
    for i in range(len(ref)):
      a, b = ours[i], ref[i]
      assert (a["label"], a["domain"], a["index"]) == (b["label"], b["domain"], b["index"])
      np.testing.assert_array_equal(a["image"], b["image"])
  metadata = tfds.builder("zsbir/synthetic", data_dir=data_dir).info.metadata
  assert metadata["classes"] == {"seen": list(split.seen_classes),
                                 "unseen": list(split.unseen_classes),
                                 "pretrain": list(pretrain.classes)}


def test_eval_pipeline_over_tfds_equals_the_one_over_files(built):
  root, data_dir = built
  config = augment.AugmentConfig(size=16)
  ours = pipeline.eval_dataset(source.TfdsSource("zsbir/synthetic", "query", data_dir), 4, config)
  ref = pipeline.eval_dataset(source.RecordSource(lists.load_split(root, "synthetic").query), 4,
                              config)
  for a, b in zip(pipeline.make_iterator(ours), pipeline.make_iterator(ref), strict=True):
    for key in b:
      np.testing.assert_array_equal(a[key], b[key])


def test_a_corrupt_image_fails_the_build_naming_its_path(tmp_path):
  root = str(tmp_path / "root")
  synthetic.generate(root, TINY)
  bad = lists.load_split(root, "synthetic").gallery[1].path
  with open(bad, "wb") as f:
    f.write(b"not an image")
  with pytest.raises(images.BadImageError, match=re.escape(bad)):
    tfds_builders.build("synthetic", root, str(tmp_path / "tfds"))


def test_the_check_of_a_build_finds_what_the_check_of_the_files_finds(built, tmp_path):
  root, data_dir = built
  config = ml_collections.ConfigDict(dict(source="tfds", root="", split="synthetic",
                                          tfds_data_dir=data_dir))
  split = source.open_split(config)
  report = check.check_tfds(split, data_dir)
  assert report.problems == ()
  files = {c.role: c.found for c in check.check_split(root, "synthetic").lists}
  assert {c.role: c.found for c in report.lists} == {
      "train_sketch": files["train_sketch"], "train_photo": files["train_photo"],
      "val": files["test_sketch"], "query": files["query"], "gallery": files["gallery"]}

  # Seen-class sketches as queries, sketches as gallery photos, an undecodable gallery image.
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not an image")
  gallery = source.Selection(split.query, source.RecordSource(
      [lists.Record(str(bad), 0, domains.PHOTO)]))
  doctored = dataclasses.replace(split, query=split.val, gallery=gallery)
  quick = "\n".join(check.check_tfds(doctored, data_dir, mode="quick").problems)
  full = "\n".join(check.check_tfds(doctored, data_dir, mode="full").problems)
  for problems in (quick, full):
    assert f"files of the val list are also in the query list: {split.val.paths[0]!r}" in problems
    assert f"gallery: {len(split.query)} items of the other domain" in problems
    assert "query: 1 labels" in problems  # val labels 0..2 of 3 seen classes; 2 unseen
  assert "unreadable" not in quick and f"gallery: 1 unreadable images: cannot read image " \
      f"{str(bad)!r}" in full

  record = str(tmp_path / "run")
  once = lambda: check.check_once(config, mode="quick", record_dir=record)
  first, second = once(), once()
  assert (first.skipped, second.skipped) == (False, True)
  assert "(its TFDS build: metadata, classes, labels, counts and domains; no image read)" in \
      first.describe()
  metadata = next(p for p in glob.glob(f"{data_dir}/zsbir/synthetic/*/*")
                  if p.endswith("metadata.json"))
  stat = os.stat(metadata)
  os.utime(metadata, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the build changed
  assert not once().skipped
