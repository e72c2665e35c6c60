r"""Writes the Sketchy mini splits (SAKE-format lists) over a tree of real Sketchy files.

  python -m experiments.make_sketchy_mini --sketchy=/data/sketchy_subset --root=/data/zsbir
  python -m experiments.check_dataset --root=/data/zsbir --split=sketchy25_mini

The tree is Sketchy's full download (256x256/{sketch,photo}/tx_000000000000/<class>/) or a
flat subset (sketch/<class>/, photo/<class>/). The images stay where they are: <root>/SketchyMini/
links to them and holds the lists of each split (zeroshot1/ for sketchy25_mini, zeroshot2/ for
sketchy21_mini); see zsbir_jax/data/sketchy_mini.py and data/README.md.
"""
from absl import app
from absl import flags
from absl import logging

from zsbir_jax.data import sketchy_mini

_SPLITS = ("sketchy25_mini", "sketchy21_mini")
_SKETCHY = flags.DEFINE_string("sketchy", None, "Sketchy tree (either layout).", required=True)
_ROOT = flags.DEFINE_string("root", None, "Data root; the splits go to <root>/SketchyMini.",
                            required=True)
_SPLIT = flags.DEFINE_multi_enum("split", list(_SPLITS), _SPLITS, "Splits to write.")
_SKETCHES = flags.DEFINE_integer("sketches_per_class", None,
                                 "Sketches used per class, the first in file order (all if unset).")
_PHOTOS = flags.DEFINE_integer("photos_per_class", None,
                               "Photos used per class, the first in file order (all if unset).")
_VAL = flags.DEFINE_integer("val_per_class", 3,
                            "Sketches per seen class held out for model selection (never trained "
                            "on); 3 of Sketchy's ~25 per class keeps 300 for validation.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for split in _SPLIT.value:
    manifest = sketchy_mini.write_split(
        _SKETCHY.value, _ROOT.value, split, sketches_per_class=_SKETCHES.value,
        photos_per_class=_PHOTOS.value, val_per_class=_VAL.value)
    logging.info("%s: %d seen / %d unseen classes, %s", split, manifest["classes"]["seen"],
                 manifest["classes"]["unseen"], manifest["counts"])


if __name__ == "__main__":
  app.run(main)
