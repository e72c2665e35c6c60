"""Timing shared by the benchmark scripts (no flags, so any script can import it)."""
import time
from typing import Callable

import jax
import numpy as np

from zsbir_jax import sharding
from zsbir_jax.data import pipeline
from zsbir_jax.training import setup as setup_lib


def median_seconds(step: Callable[[], object], n: int, warmup: int) -> float:
  """Median wall seconds of `step()` over n calls after `warmup` untimed ones.

  `step` must return only when its work is done (block on JAX results).
  """
  for _ in range(warmup):
    step()
  times = []
  for _ in range(n):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def input_images_per_second(config, steps: int) -> float:
  """Images/s of a training config's input alone, `steps` batches: its pipeline (with
  config.data.workers) and the transfer to the devices; the first batch (start-up) untimed."""
  setup = setup_lib.prepare(config)
  mesh = sharding.make_mesh()
  dataset = pipeline.train_dataset(setup.train_source, setup.sampler,
                                   setup.input_config, seed=config.seed,
                                   num_epochs=config.optim.epochs)
  iterator = pipeline.make_iterator(dataset, num_workers=config.data.workers,
                                    num_threads=config.data.threads,
                                    prefetch=config.data.prefetch)
  jax.block_until_ready(pipeline.to_global(next(iterator), mesh))  # start-up
  start = time.perf_counter()
  for _ in range(steps):
    batch = pipeline.to_global(next(iterator), mesh)
  jax.block_until_ready(batch)
  return steps * setup.sampler.batch_size / (time.perf_counter() - start)
