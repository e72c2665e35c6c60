"""`efficientnet-lite-pytorch` `state_dict` <-> Flax variables of `efficientnet_lite`, exactly.

Flax path ('params', 'blocks_3', 'depthwise_conv', 'kernel') is torch key
'_blocks.3._depthwise_conv.weight': every module name gains the package's leading underscore
and `blocks_i` becomes `_blocks.i`; layouts and the checks are `torch_weights`'.
"""
from collections.abc import Mapping
from typing import Any

import numpy as np

from zsbir_jax.models import torch_weights


def torch_key(path: tuple[str, ...]) -> str:
  """Torch key of a Flax variable path, e.g. ('batch_stats', 'blocks_0', 'bn1', 'mean')."""
  collection, *modules, leaf = path
  names = ["_" + module.replace("blocks_", "blocks.") for module in modules]
  return ".".join(names + [torch_weights.TORCH_LEAF[(collection, leaf)]])


def torch_to_flax(state_dict: Mapping[str, Any],
                  template: torch_weights.Variables) -> dict[str, Any]:
  """Flax EfficientNet-Lite variables shaped like `template` from the package's state_dict (see
  `torch_weights.torch_to_flax`; raises `torch_weights.ConversionError`)."""
  return torch_weights.torch_to_flax(state_dict, template, torch_key, "EfficientNet-Lite")


def flax_to_torch(variables: torch_weights.Variables) -> dict[str, np.ndarray]:
  """The package's `state_dict` (NumPy arrays) of Flax EfficientNet-Lite variables; exact
  inverse."""
  return torch_weights.flax_to_torch(variables, torch_key)
