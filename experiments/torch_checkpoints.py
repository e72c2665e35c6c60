"""torch `.pth` state_dicts <-> pretrained-backbone directories (`zsbir_jax.models.pretrained`).

The library of experiments.convert_weights; defines no flags, so that any command can import it.
Needs torch.
"""
import hashlib
import os

from absl import logging
import jax
import jax.numpy as jnp

from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite_weights
from zsbir_jax.models import pretrained
from zsbir_jax.models import torchvision_weights


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("converting weights needs PyTorch: pip install 'zsbir_jax[test]'") from e
  return torch


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


# Per family: (torch package the .pth comes from, its converter, the classifier's weight key).
_CONVERTERS = {
    backbones.RESNET: ("torchvision", torchvision_weights, "fc.weight"),
    backbones.EFFICIENTNET_LITE: ("efficientnet-lite-pytorch", efficientnet_lite_weights,
                                   "_fc.weight"),
}


def import_checkpoint(torch_checkpoint: str, output: str, family: str = backbones.RESNET,
                      depth: int = 50, variant: int = 0) -> None:
  """Reads a torch state_dict of `family` and writes it as a pretrained-backbone directory."""
  torch = _import_torch()
  package, converter, fc_key = _CONVERTERS[family]
  state_dict = torch.load(torch_checkpoint, map_location="cpu", weights_only=True)
  state_dict = {k: v.numpy() for k, v in state_dict.items()}
  spec = pretrained.BackboneSpec(
      family=family, depth=depth, variant=variant,
      num_classes=state_dict[fc_key].shape[0] if fc_key in state_dict else 0,
      source=f"{package}:{os.path.basename(torch_checkpoint)}:sha256={_sha256(torch_checkpoint)}")
  model = spec.model()
  template = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = converter.torch_to_flax(state_dict, template)
  pretrained.save(output, variables, spec)
  logging.info("wrote %s (%s)", output, spec)


def export_checkpoint(backbone: str, export_path: str) -> None:
  """Writes a pretrained-backbone directory as its family's torch state_dict `.pth`."""
  torch = _import_torch()
  variables, spec = pretrained.load(backbone)
  converter = _CONVERTERS[spec.family][1]
  state_dict = {k: torch.from_numpy(v) for k, v in converter.flax_to_torch(variables).items()}
  torch.save(state_dict, export_path)
  logging.info("wrote %s from %s (%s)", export_path, backbone, spec)
