r"""Writes a synthetic tree with Sketchy Extended's layout and counts, to rehearse `sketchy25`.

  python -m experiments.make_synthetic_sketchy --root=/tmp/rehearsal
  python -m experiments.check_dataset --root=/tmp/rehearsal --split=sketchy25

<root>/Sketchy/ gets 75,471 sketches and 73,002 photos at 256 px in SAKE's directories, with
SAKE's zeroshot1 lists (zsbir_jax/data/synthetic_sketchy.py): about 2 GB, written in minutes.
The images are procedural shapes, not Sketchy: the tree rehearses sizes and timings, and its
retrieval numbers mean nothing. experiments/benchmarks/sketchy_rehearsal.py runs the whole path
on it.
"""
import os
import time

from absl import app
from absl import flags
from absl import logging

from zsbir_jax.data import synthetic_sketchy

_ROOT = flags.DEFINE_string("root", None, "Data root; the tree goes to <root>/Sketchy (which "
                            "must not exist).", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every image.")
_POOL_SIZE = flags.DEFINE_integer("pool_size", 8, "Images rendered per class and domain; every "
                                  "file is one of them, flipped and shifted.", lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1, "Processes (one class each).",
                                lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  start = time.time()
  record = synthetic_sketchy.generate(_ROOT.value, seed=_SEED.value, pool_size=_POOL_SIZE.value,
                                      workers=_WORKERS.value)
  logging.info("wrote %s in %.0f s: %s", os.path.join(_ROOT.value, "Sketchy"),
               time.time() - start, record["counts"])


if __name__ == "__main__":
  app.run(main)
