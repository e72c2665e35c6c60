r"""Checks a dataset root for one split: counts, missing files, unreadable images, class files.

  python -m experiments.check_dataset --root=/data/zsbir --split=sketchy25 [--mode=quick]

Prints a table of every list of the split (items found, published count, missing files,
unreadable images) and the problems found; exits with status 1 if there is any.
"""
import os
import sys

from absl import app
from absl import flags

from zsbir_jax.data import check
from zsbir_jax.data import lists

_ROOT = flags.DEFINE_string("root", None, "Data root holding Sketchy/, TUBerlin/, ... .",
                            required=True)
_SPLIT = flags.DEFINE_enum("split", None, list(lists.SPLITS), "Split to check.", required=True)
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1,
                                "Processes decoding the images.")
_MODE = flags.DEFINE_enum("mode", "full", list(check.MODES),
                          "full: decode every image; quick: headers and sizes only.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 5, "Offending paths named per problem.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not os.path.isdir(_ROOT.value):
    raise app.UsageError(f"--root {_ROOT.value!r} is not a directory")
  report = check.check_split(_ROOT.value, _SPLIT.value, mode=_MODE.value,
                             workers=_WORKERS.value, max_examples=_MAX_EXAMPLES.value)
  print(check.format_report(report))
  sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
  app.run(main)
