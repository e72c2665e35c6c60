"""Timing shared by the benchmark scripts (no flags, so any script can import it)."""
import time
from typing import Callable

import numpy as np


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
