"""Pretrained backbone checkpoints: a directory the trainer can start from.

Layout: `<dir>/backbone.json` (the architecture and where the weights came from) and
`<dir>/variables/` (an orbax checkpoint of the Flax variables {'params', 'batch_stats'}).
Written by `experiments.convert_weights` from a torchvision `.pth`, and by backbone pretraining.
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

from zsbir_jax.models import resnet

SPEC_FILE = "backbone.json"
VARIABLES_DIR = "variables"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """What a pretrained backbone is: its architecture and its provenance (e.g. a file's sha256)."""
  depth: int
  width: float
  num_classes: int
  source: str

  def model(self, **kwargs: Any) -> resnet.ResNet:
    """The ResNet these variables belong to (kwargs: dtype, remat)."""
    return resnet.ResNet(depth=self.depth, width=self.width, num_classes=self.num_classes,
                         **kwargs)


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
