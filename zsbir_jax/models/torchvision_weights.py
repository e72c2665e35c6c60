"""torchvision ResNet `state_dict` <-> Flax variables of `resnet.ResNet`, exactly.

The two trees correspond key by key: Flax path ('params', 'layer1_0', 'downsample_conv',
'kernel') is torch key 'layer1.0.downsample.0.weight'; layouts and the checks are
`torch_weights`'.
"""
from collections.abc import Mapping
from typing import Any

import numpy as np

from zsbir_jax.models import torch_weights

_TORCH_MODULE = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}


def torch_key(path: tuple[str, ...]) -> str:
  """Torch key of a Flax variable path, e.g. ('params', 'layer2_0', 'conv1', 'kernel')."""
  collection, *modules, leaf = path
  names = []
  for module in modules:
    if module.startswith("layer"):
      names.append(module.replace("_", "."))
    else:
      names.append(_TORCH_MODULE.get(module, module))
  return ".".join(names + [torch_weights.TORCH_LEAF[(collection, leaf)]])


def torch_to_flax(state_dict: Mapping[str, Any],
                  template: torch_weights.Variables) -> dict[str, Any]:
  """Flax ResNet variables shaped like `template` from a torchvision state_dict (see
  `torch_weights.torch_to_flax`; raises `torch_weights.ConversionError`)."""
  return torch_weights.torch_to_flax(state_dict, template, torch_key, "ResNet")


def flax_to_torch(variables: torch_weights.Variables) -> dict[str, np.ndarray]:
  """The torchvision `state_dict` (NumPy arrays) of Flax ResNet variables; exact inverse."""
  return torch_weights.flax_to_torch(variables, torch_key)
