r"""The procedural synthetic benchmark that experiments.make_synthetic writes.

  python -m experiments.make_synthetic --root=/data/zsbir --config.seed=0

The sizes are the fields of zsbir_jax.data.synthetic.SyntheticConfig (the benchmark of
experiments/configs/synthetic.py), with their defaults; override any with --config.x=value.
"""
import dataclasses
import os

import ml_collections

from experiments.configs import common
from zsbir_jax.data import synthetic


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  common.parse_arg(arg)
  config = ml_collections.ConfigDict(dataclasses.asdict(synthetic.SyntheticConfig()))
  config.workers = os.cpu_count() or 1  # rendering processes; the files do not depend on it
  return config
