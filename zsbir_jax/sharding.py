"""The device mesh and the shardings of the train state and batches.

One mesh axis, 'data', over all devices of all processes (Auto axis type: XLA's GSPMD propagates
shardings, which is what data parallelism needs). Batches are split over 'data'; parameters and
optimizer state are replicated, or, with FSDP, every leaf of at least `fsdp_min_size` elements
is split over 'data' along its largest axis divisible by the device count (XLA all-gathers it
where it is used and reduce-scatters its gradient).
"""
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def leaf_spec(shape: tuple[int, ...], num_shards: int, fsdp_min_size: int | None) -> P:
  """PartitionSpec of one state leaf: replicated, or split along its largest divisible axis."""
  if fsdp_min_size is None or int(np.prod(shape, dtype=np.int64)) < fsdp_min_size:
    return P()
  divisible = [axis for axis, size in enumerate(shape) if size % num_shards == 0]
  if not divisible:
    return P()
  axis = max(divisible, key=lambda a: shape[a])
  return P(*[DATA_AXIS if a == axis else None for a in range(len(shape))])


def state_shardings(state: Any, mesh: Mesh, fsdp_min_size: int | None = None) -> Any:
  """NamedShardings for every leaf of `state` (arrays or ShapeDtypeStructs).

  `fsdp_min_size=None` replicates everything (plain data parallelism).
  """
  size = mesh.shape[DATA_AXIS]
  return jax.tree.map(
      lambda leaf: NamedSharding(mesh, leaf_spec(np.shape(leaf), size, fsdp_min_size)), state)


def put_global(tree: Any, shardings: Any) -> Any:
  """Global jax.Arrays from host values that every process holds in full (e.g. a fresh state).

  Each process places only its addressable shards, so this works on one host and on many.
  """
  def put(value, leaf_sharding):
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, leaf_sharding, lambda index: value[index])
  return jax.tree.map(put, tree, shardings)
