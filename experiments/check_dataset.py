r"""Checks a dataset root for one split: counts, missing files, unreadable images, class files.

  python -m experiments.check_dataset --root=/data/zsbir --split=sketchy25 [--mode=quick]
  python -m experiments.check_dataset --source=tfds --tfds_data_dir=/data/tfds --split=sketchy25

Prints a table of every list of the split (items found, published count, missing files,
unreadable images) and the problems found; exits with status 1 if there is any. With
--source=tfds it checks the split's TFDS build instead (zsbir_jax/data/check.py, check_tfds).
"""
import os
import sys

from absl import app
from absl import flags
import ml_collections

from zsbir_jax.data import check
from zsbir_jax.data import lists
from zsbir_jax.data import source

_SOURCE = flags.DEFINE_enum("source", "files", source.SOURCES, "What to check: the list files "
                            "under --root, or the split's TFDS build in --tfds_data_dir.")
_ROOT = flags.DEFINE_string("root", "", "Data root holding Sketchy/, TUBerlin/, ... .")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "TFDS data directory of the build "
                                     "(zsbir_jax.data.tfds_builders), for --source=tfds.")
_SPLIT = flags.DEFINE_enum("split", None, list(lists.SPLITS), "Split to check.", required=True)
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1,
                                "Processes (threads for a TFDS build) decoding the images.")
_MODE = flags.DEFINE_enum("mode", "full", list(check.MODES),
                          "full: decode every image; quick: headers and sizes only.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 5, "Offending paths named per problem.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  options = dict(mode=_MODE.value, workers=_WORKERS.value, max_examples=_MAX_EXAMPLES.value)
  if _SOURCE.value == "tfds":
    data = ml_collections.ConfigDict(dict(source="tfds", root="", split=_SPLIT.value,
                                          tfds_data_dir=_TFDS_DATA_DIR.value))
    try:
      split = source.open_split(data)
    except ValueError as e:
      raise app.UsageError(str(e)) from e
    report = check.check_tfds(split, _TFDS_DATA_DIR.value, **options)
  else:
    if not os.path.isdir(_ROOT.value):
      raise app.UsageError(f"--root {_ROOT.value!r} is not a directory")
    report = check.check_split(_ROOT.value, _SPLIT.value, **options)
  print(check.format_report(report))
  sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
  app.run(main)
