"""PyTorch `state_dict` <-> Flax variables, exactly, for a model whose names map one-to-one.

A family supplies `torch_key(path)`, the torch key of a Flax variable path such as
('params', 'layer1_0', 'conv1', 'kernel'); this module does the rest: conv kernels are
transposed OIHW -> HWIO (depthwise (C, 1, k, k) -> (k, k, 1, C) alike), dense weights
(out, in) -> (in, out); BatchNorm scale/bias/mean/var are torch's weight/bias/running_mean/
running_var. `num_batches_tracked` carries no information for momentum-based BatchNorm and is
dropped on import (and written as 0 on export, so that torch's strict `load_state_dict` accepts
the result). Arrays are NumPy on both sides: reading a `.pth` is the caller's business, so this
module needs no torch.
"""
from collections.abc import Callable, Mapping
from typing import Any

import flax
import numpy as np

Variables = Mapping[str, Any]
KeyFn = Callable[[tuple[str, ...]], str]

# (collection, Flax leaf name) -> torch parameter name.
TORCH_LEAF = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


class ConversionError(ValueError):
  """A torch state_dict that does not fit the Flax model (missing, extra or mis-shaped keys)."""


def _to_torch_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:  # HWIO -> OIHW
    return array.transpose(3, 2, 0, 1)
  if array.ndim == 2:  # (in, out) -> (out, in)
    return array.T
  return array


def _to_flax_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:  # OIHW -> HWIO
    return array.transpose(2, 3, 1, 0)
  if array.ndim == 2:
    return array.T
  return array


def torch_to_flax(state_dict: Mapping[str, Any], template: Variables, torch_key: KeyFn,
                  model_name: str) -> dict[str, Any]:
  """Fills the Flax variable tree `template` (arrays or ShapeDtypeStructs) from `state_dict`.

  Every torch key must be used and every Flax leaf filled; otherwise raises ConversionError
  naming each offending key with both shapes. Values keep the template's dtype.
  """
  torch_arrays = {k: np.asarray(v) for k, v in state_dict.items()
                  if not k.endswith("num_batches_tracked")}
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
  problems, out, used = [], {}, set()
  for path, leaf in flat.items():
    key = torch_key(path)
    if key not in torch_arrays:
      problems.append(f"missing torch key {key!r} for Flax {'/'.join(path)} {tuple(leaf.shape)}")
      continue
    value = _to_flax_layout(torch_arrays[key])
    used.add(key)
    if value.shape != tuple(leaf.shape):
      problems.append(
          f"shape mismatch at torch key {key!r}: torch {tuple(torch_arrays[key].shape)} "
          f"-> {value.shape} in Flax layout, Flax {'/'.join(path)} expects {tuple(leaf.shape)}")
      continue
    out[path] = value.astype(leaf.dtype)
  problems += [f"unexpected torch key {k!r} {tuple(torch_arrays[k].shape)} (no Flax variable)"
               for k in sorted(set(torch_arrays) - used)]
  if problems:
    raise ConversionError(f"torch state_dict does not match the Flax {model_name}:\n  "
                          + "\n  ".join(problems))
  return flax.traverse_util.unflatten_dict(out)


def flax_to_torch(variables: Variables, torch_key: KeyFn) -> dict[str, np.ndarray]:
  """The torch `state_dict` (NumPy arrays) of Flax variables; exact inverse of torch_to_flax."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
  state = {torch_key(path): np.ascontiguousarray(_to_torch_layout(np.asarray(value)))
           for path, value in flat.items()}
  for key in [k for k in state if k.endswith("running_var")]:
    state[key.replace("running_var", "num_batches_tracked")] = np.zeros((), np.int64)
  return state
