r"""Converts a torchvision ResNet `.pth` into a pretrained-backbone directory, or back.

  # torchvision -> zsbir_jax (the trainer starts from --output):
  python -m experiments.convert_weights --torch_checkpoint=resnet50-0676ba61.pth \
      --depth=50 --output=/ckpt/resnet50_imagenet
  # zsbir_jax -> torchvision (load with torchvision.models.resnet50().load_state_dict):
  python -m experiments.convert_weights --backbone=/ckpt/resnet50_imagenet --export_torch=r50.pth

Weights are never downloaded: supply the file (e.g. from torchvision's model zoo). Needs torch.
"""
import hashlib
import os

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp

from zsbir_jax.models import pretrained
from zsbir_jax.models import torchvision_weights

_TORCH_CHECKPOINT = flags.DEFINE_string("torch_checkpoint", None, "torchvision .pth to import.")
_DEPTH = flags.DEFINE_enum("depth", "50", ["18", "34", "50", "101"], "ResNet depth of the .pth.")
_OUTPUT = flags.DEFINE_string("output", None, "New pretrained-backbone directory to write.")
_BACKBONE = flags.DEFINE_string("backbone", None, "Pretrained-backbone directory to export.")
_EXPORT_TORCH = flags.DEFINE_string("export_torch", None, "torchvision .pth file to write.")


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise app.UsageError("converting weights needs PyTorch: pip install 'zsbir_jax[test]'") from e
  return torch


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def import_torchvision(torch_checkpoint: str, depth: int, output: str) -> None:
  """Reads a torchvision state_dict and writes it as a pretrained-backbone directory."""
  torch = _import_torch()
  state_dict = torch.load(torch_checkpoint, map_location="cpu", weights_only=True)
  state_dict = {k: v.numpy() for k, v in state_dict.items()}
  num_classes = state_dict["fc.weight"].shape[0] if "fc.weight" in state_dict else 0
  spec = pretrained.BackboneSpec(
      depth=depth, width=1.0, num_classes=num_classes,
      source=f"torchvision:{os.path.basename(torch_checkpoint)}:sha256={_sha256(torch_checkpoint)}")
  model = spec.model()
  template = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = torchvision_weights.torch_to_flax(state_dict, template)
  pretrained.save(output, variables, spec)
  logging.info("wrote %s (%s)", output, spec)


def export_torchvision(backbone: str, export_torch: str) -> None:
  """Writes a pretrained-backbone directory as a torchvision state_dict `.pth`."""
  torch = _import_torch()
  variables, spec = pretrained.load(backbone)
  state_dict = {k: torch.from_numpy(v) for k, v in torchvision_weights.flax_to_torch(variables).items()}
  torch.save(state_dict, export_torch)
  logging.info("wrote %s from %s (%s)", export_torch, backbone, spec)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TORCH_CHECKPOINT.value and _OUTPUT.value:
    import_torchvision(_TORCH_CHECKPOINT.value, int(_DEPTH.value), _OUTPUT.value)
  elif _BACKBONE.value and _EXPORT_TORCH.value:
    export_torchvision(_BACKBONE.value, _EXPORT_TORCH.value)
  else:
    raise app.UsageError("give --torch_checkpoint and --output, or --backbone and --export_torch")


if __name__ == "__main__":
  app.run(main)
