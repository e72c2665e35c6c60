"""Pretrained backbone checkpoints: a directory the trainer can start from.

Layout: `<dir>/backbone.json` (the architecture, its input normalisation and where the weights
came from) and `<dir>/variables/` (an orbax checkpoint of the Flax variables {'params',
'batch_stats'}). Written by `experiments.convert_weights` from a torchvision or
`efficientnet-lite-pytorch` `.pth`, and by backbone pretraining.
Orbax writes to a temporary directory and renames it on success, so a killed write never leaves
a readable half-checkpoint; the JSON is written after it, so its presence marks completion.
"""
import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from zsbir_jax.models import backbones

SPEC_FILE = "backbone.json"
VARIABLES_DIR = "variables"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """What a pretrained backbone is: its architecture, its input normalisation and its provenance
  (e.g. a file's sha256).

  `family` is `backbones.RESNET` (`depth`) or `EFFICIENTNET_LITE` (`variant`, 0..4); `width`
  multiplies the channel counts of either. `input_mean`/`input_std` (per RGB channel, pixel
  units) default to the family's (`backbones.INPUT_NORMALIZATION`); directories written before
  they were recorded are ResNets with ImageNet mean/std.
  """
  num_classes: int
  source: str
  family: str = backbones.RESNET
  depth: int = 50
  variant: int = 0
  width: float = 1.0
  input_mean: tuple[float, float, float] | None = None
  input_std: tuple[float, float, float] | None = None

  def __post_init__(self):
    if self.family not in backbones.INPUT_NORMALIZATION:
      raise ValueError(f"unknown backbone family {self.family!r}, "
                       f"expected one of {sorted(backbones.INPUT_NORMALIZATION)}")
    mean, std = backbones.INPUT_NORMALIZATION[self.family]
    object.__setattr__(self, "input_mean", tuple(map(float, self.input_mean or mean)))
    object.__setattr__(self, "input_std", tuple(map(float, self.input_std or std)))

  def model(self, **kwargs: Any) -> backbones.Backbone:
    """The network these variables belong to (kwargs: dtype, remat, ...)."""
    return backbones.make(self.family, self.depth, self.variant, self.width, self.num_classes,
                          **kwargs)

  def normalize(self, images: Any) -> np.ndarray:
    """RGB pixel values 0..255 (..., 3), any dtype -> float32 network inputs (..., 3)."""
    mean = np.asarray(self.input_mean, np.float32)
    return (np.asarray(images, np.float32) - mean) / np.asarray(self.input_std, np.float32)


def save(directory: str, variables: Any, spec: BackboneSpec) -> None:
  """Writes `variables` and `spec` to `directory`, which must not exist yet."""
  if os.path.exists(directory):
    raise FileExistsError(f"refusing to overwrite existing pretrained backbone at {directory}")
  os.makedirs(directory)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(os.path.join(directory, VARIABLES_DIR)),
                    jax.tree.map(np.asarray, variables))
  checkpointer.wait_until_finished()
  with open(os.path.join(directory, SPEC_FILE), "w") as f:
    json.dump(dataclasses.asdict(spec), f, indent=2)


def load(directory: str) -> tuple[dict[str, Any], BackboneSpec]:
  """Reads (variables as NumPy arrays, spec) from a directory written by `save`."""
  spec_path = os.path.join(directory, SPEC_FILE)
  if not os.path.isfile(spec_path):
    raise FileNotFoundError(f"no pretrained backbone at {directory} (missing {SPEC_FILE})")
  with open(spec_path) as f:
    spec = BackboneSpec(**json.load(f))
  variables = ocp.StandardCheckpointer().restore(
      os.path.abspath(os.path.join(directory, VARIABLES_DIR)))
  return jax.tree.map(np.asarray, variables), spec
