r"""Writes the procedural synthetic ZS-SBIR benchmark (and its pretraining set) to a data root.

  python -m experiments.make_synthetic --root=/data/zsbir --config.seed=0
  python -m experiments.check_dataset --root=/data/zsbir --split=synthetic

Creates <root>/Synthetic in the SAKE layout (see zsbir_jax/data/synthetic.py and data/README.md);
the same seed and sizes give byte-identical files. The sizes are
experiments/configs/make_synthetic.py (the default --config); override any with
--config.x=value.
"""
import dataclasses
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from zsbir_jax.data import lists
from zsbir_jax.data import synthetic

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "make_synthetic.py"),
    "Benchmark config file.", lock_config=True)
_ROOT = flags.DEFINE_string("root", None, "Data root; the benchmark goes to <root>/Synthetic.",
                            required=True)
_CONTACT_SHEET = flags.DEFINE_string("contact_sheet", None,
                                     "If set, write a PNG grid of seen-class sketches and photos.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  benchmark = synthetic.SyntheticConfig(
      **{f.name: config[f.name] for f in dataclasses.fields(synthetic.SyntheticConfig)})
  start = time.time()
  manifest = synthetic.generate(_ROOT.value, benchmark, workers=config.workers)
  logging.info("wrote %s in %.1f s: %s", os.path.join(_ROOT.value, synthetic.SPLIT.dataset_dir),
               time.time() - start, manifest["counts"])
  if _CONTACT_SHEET.value:
    split = lists.load_split(_ROOT.value, "synthetic")
    synthetic.contact_sheet(split.train).save(_CONTACT_SHEET.value)
    logging.info("wrote %s", _CONTACT_SHEET.value)


if __name__ == "__main__":
  app.run(main)
