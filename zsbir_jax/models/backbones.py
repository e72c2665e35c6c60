"""The backbone families: how to build one, and the input normalisation its weights expect.

Every family maps images (B, H, W, 3) to pooled features (B, feature_dim) with the same call,
`model(images, train=False, with_logits=False)`, so the rest of the package takes any of them.
"""
from typing import Any

from zsbir_jax.data import augment
from zsbir_jax.models import efficientnet_lite
from zsbir_jax.models import resnet

RESNET = "resnet"
EFFICIENTNET_LITE = "efficientnet_lite"
# What each family's weights expect, in RGB pixel units 0..255: inputs are (x - mean) / std.
# ResNet: torchvision's ImageNet mean/std (of x / 255); EfficientNet-Lite: the TensorFlow
# original's (x - 127) / 128, which `efficientnet-lite-pytorch`'s weights keep.
INPUT_NORMALIZATION = {
    RESNET: (augment.IMAGENET_PIXEL_MEAN, augment.IMAGENET_PIXEL_STD),
    EFFICIENTNET_LITE: ((127.0,) * 3, (128.0,) * 3),
}


Backbone = resnet.ResNet | efficientnet_lite.EfficientNetLite


def make(family: str, depth: int = 50, variant: int = 0, width: float = 1.0,
         num_classes: int = 1000, **kwargs: Any) -> Backbone:
  """A ResNet of `depth` or an EfficientNet-Lite of `variant` (kwargs: dtype, remat, ...)."""
  if family == RESNET:
    return resnet.ResNet(depth=depth, width=width, num_classes=num_classes, **kwargs)
  if family == EFFICIENTNET_LITE:
    return efficientnet_lite.EfficientNetLite(variant=variant, width=width,
                                              num_classes=num_classes, **kwargs)
  raise ValueError(f"unknown backbone family {family!r}, expected one of "
                   f"{sorted(INPUT_NORMALIZATION)}")
