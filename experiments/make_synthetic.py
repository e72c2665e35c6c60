r"""Writes the procedural synthetic ZS-SBIR benchmark (and its pretraining set) to a data root.

  python -m experiments.make_synthetic --root=/data/zsbir --seed=0
  python -m experiments.check_dataset --root=/data/zsbir --split=synthetic

Creates <root>/Synthetic in the SAKE layout (see zsbir_jax/data/synthetic.py and data/README.md);
the same seed and sizes give byte-identical files.
"""
import os
import time

from absl import app
from absl import flags
from absl import logging

from zsbir_jax.data import lists
from zsbir_jax.data import synthetic

_DEFAULTS = synthetic.SyntheticConfig()
_ROOT = flags.DEFINE_string("root", None, "Data root; the benchmark goes to <root>/Synthetic.",
                            required=True)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of every class and image.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", _DEFAULTS.image_size, "Image side in pixels.")
_NUM_SEEN = flags.DEFINE_integer("num_seen", _DEFAULTS.num_seen, "Seen (training) classes.")
_NUM_UNSEEN = flags.DEFINE_integer("num_unseen", _DEFAULTS.num_unseen, "Unseen (test) classes.")
_SKETCHES = flags.DEFINE_integer("sketches_per_class", _DEFAULTS.sketches_per_class,
                                 "Train sketches per seen class; query sketches per unseen class.")
_TEST_SKETCHES = flags.DEFINE_integer("test_sketches_per_class",
                                      _DEFAULTS.test_sketches_per_class,
                                      "Held-out (validation) sketches per seen class.")
_PHOTOS = flags.DEFINE_integer("photos_per_class", _DEFAULTS.photos_per_class,
                               "Photos per seen class (train) and unseen class (gallery).")
_NUM_PRETRAIN = flags.DEFINE_integer("num_pretrain", _DEFAULTS.num_pretrain,
                                     "Classes of the photo-only pretraining set.")
_PRETRAIN_PHOTOS = flags.DEFINE_integer("pretrain_photos_per_class",
                                        _DEFAULTS.pretrain_photos_per_class,
                                        "Photos per pretraining class.")
_PRETRAIN_VAL = flags.DEFINE_integer("pretrain_val_per_class", _DEFAULTS.pretrain_val_per_class,
                                     "Of those, photos per class in the pretraining val list.")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1, "Rendering processes.")
_CONTACT_SHEET = flags.DEFINE_string("contact_sheet", None,
                                     "If set, write a PNG grid of seen-class sketches and photos.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = synthetic.SyntheticConfig(
      seed=_SEED.value, image_size=_IMAGE_SIZE.value, num_seen=_NUM_SEEN.value,
      num_unseen=_NUM_UNSEEN.value, sketches_per_class=_SKETCHES.value,
      test_sketches_per_class=_TEST_SKETCHES.value, photos_per_class=_PHOTOS.value,
      num_pretrain=_NUM_PRETRAIN.value, pretrain_photos_per_class=_PRETRAIN_PHOTOS.value,
      pretrain_val_per_class=_PRETRAIN_VAL.value)
  start = time.time()
  manifest = synthetic.generate(_ROOT.value, config, workers=_WORKERS.value)
  logging.info("wrote %s in %.1f s: %s", os.path.join(_ROOT.value, synthetic.SPLIT.dataset_dir),
               time.time() - start, manifest["counts"])
  if _CONTACT_SHEET.value:
    split = lists.load_split(_ROOT.value, "synthetic")
    synthetic.contact_sheet(split.train).save(_CONTACT_SHEET.value)
    logging.info("wrote %s", _CONTACT_SHEET.value)


if __name__ == "__main__":
  app.run(main)
