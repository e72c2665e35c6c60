"""torchvision ResNet `state_dict` <-> Flax variables of `resnet.ResNet`, exactly.

The two trees correspond key by key: Flax path ('params', 'layer1_0', 'downsample_conv',
'kernel') is torch key 'layer1.0.downsample.0.weight'. Conv kernels are transposed
OIHW -> HWIO, the fc weight (out, in) -> (in, out); BatchNorm scale/bias/mean/var are torch's
weight/bias/running_mean/running_var. `num_batches_tracked` carries no information for
momentum-based BatchNorm and is dropped on import (and written as 0 on export, so that
torchvision's strict `load_state_dict` accepts the result).

Arrays are NumPy on both sides: reading a `.pth` (torch.load) is the caller's business, so this
module needs no torch.
"""
from collections.abc import Mapping
from typing import Any

import flax
import numpy as np

Variables = Mapping[str, Any]

_TORCH_MODULE = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
_TORCH_LEAF = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


class ConversionError(ValueError):
  """A torch state_dict that does not fit the Flax model (missing, extra or mis-shaped keys)."""


def torch_key(path: tuple[str, ...]) -> str:
  """Torch key of a Flax variable path, e.g. ('params', 'layer2_0', 'conv1', 'kernel')."""
  collection, *modules, leaf = path
  names = []
  for module in modules:
    if module.startswith("layer"):
      names.append(module.replace("_", "."))
    else:
      names.append(_TORCH_MODULE.get(module, module))
  return ".".join(names + [_TORCH_LEAF[(collection, leaf)]])


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


def torch_to_flax(state_dict: Mapping[str, Any], template: Variables) -> dict[str, Any]:
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
    raise ConversionError("torch state_dict does not match the Flax ResNet:\n  "
                          + "\n  ".join(problems))
  return flax.traverse_util.unflatten_dict(out)


def flax_to_torch(variables: Variables) -> dict[str, np.ndarray]:
  """The torchvision `state_dict` (NumPy arrays) of Flax ResNet variables; exact inverse."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
  state = {torch_key(path): np.ascontiguousarray(_to_torch_layout(np.asarray(value)))
           for path, value in flat.items()}
  for key in [k for k in state if k.endswith("running_var")]:
    state[key.replace("running_var", "num_batches_tracked")] = np.zeros((), np.int64)
  return state
