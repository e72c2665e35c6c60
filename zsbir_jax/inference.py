"""Runs a jitted function over an evaluation dataset: every item once, in source order.

The dataset is `pipeline.eval_dataset` (padded global batches with 'mask' and 'index'); batches
are sharded over the mesh's data axis, outputs are gathered to every process, padding is dropped
and the result is checked to hold each source index exactly once.
"""
from collections.abc import Callable, Iterable

import jax
import numpy as np

from zsbir_jax import sharding
from zsbir_jax.data import pipeline


def predict(
    fn: Callable[[jax.Array], jax.Array],
    batches: Iterable[dict[str, np.ndarray]],
    mesh: jax.sharding.Mesh,
    num_items: int,
) -> np.ndarray:
  """Stacks fn(images) over all real items, ordered by source index.

  Args:
    fn: images (B, H, W, 3) -> outputs (B, ...); jitted here with the batch split over 'data'.
    batches: this process's batches of a `pipeline.eval_dataset`.
    mesh: the device mesh.
    num_items: the source's length.

  Returns:
    (num_items, ...) NumPy array; row i is fn of source item i.
  """
  @jax.jit
  def step(images, mask, index):
    return jax.lax.with_sharding_constraint(
        (fn(images), mask, index), sharding.replicated(mesh))

  outputs, indices = [], []
  for batch in batches:
    batch = pipeline.to_global({k: batch[k] for k in ("image", "mask", "index")}, mesh)
    out, mask, index = jax.device_get(step(batch["image"], batch["mask"], batch["index"]))
    outputs.append(out[mask])
    indices.append(index[mask])
  if not outputs:
    raise ValueError("predict: the dataset yielded no batch")
  index = np.concatenate(indices)
  if len(index) != num_items or not np.array_equal(np.sort(index), np.arange(num_items)):
    raise RuntimeError(f"predict: expected each of {num_items} items once, got {len(index)} items "
                       f"covering {len(np.unique(index))} distinct indices")
  out = np.concatenate(outputs)
  result = np.empty_like(out)
  result[index] = out
  return result
