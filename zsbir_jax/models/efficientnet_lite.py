"""A functional EfficientNet-Lite0..4 with the structure of the PyPI `efficientnet-lite-pytorch`.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish,
and with the stem (32 channels), the head (1280 channels) and the repeats of the first and last
stages left unscaled; the variants differ only in width and depth coefficients. As in that
package (and the TensorFlow original): TensorFlow 'SAME' padding (the package's dynamic padding;
its default static padding, computed for the nominal image size, is the same whenever the height
and width are multiples of 32), BatchNorm with epsilon 1e-3 and momentum 0.99 (Flax's
convention; 0.01 in torch's), drop-connect on the identity-skip blocks in training at a rate
growing linearly with the block index, dropout before the classifier. Images are NHWC, inputs
normalised as (x - 127) / 128 (`pretrained.BackboneSpec.normalize`). Module names are the torch
keys without their leading underscore (`conv_stem`, `blocks_3`, `depthwise_conv`, `bn1`, `fc`),
see `efficientnet_lite_weights.py`.
"""
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zsbir_jax.models import conv as conv_lib
from zsbir_jax.models import resnet


class Stage(NamedTuple):
  """One row of the block table: `repeats` MBConv blocks, the first with `stride`."""
  repeats: int
  kernel: int
  stride: int
  expand: int
  in_channels: int
  out_channels: int


# The package's block strings 'r1_k3_s11_e1_i32_o16', ... (EfficientNet-B0's, without SE).
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# Lite0..4: (width coefficient, depth coefficient, classifier dropout rate), the package's table.
VARIANTS = {0: (1.0, 1.0, 0.2), 1: (1.0, 1.1, 0.2), 2: (1.1, 1.2, 0.3), 3: (1.2, 1.4, 0.3),
            4: (1.4, 1.8, 0.3)}
DIVISOR = 8  # channel counts are multiples of 8
BN = dict(momentum=0.99, epsilon=1e-3)  # the package's batch_norm_momentum/epsilon (TF's)
# Every torch layer keeps torch's default initialisation (the package sets none).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
Conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=torch_default_init,
                         conv_general_dilated=conv_lib.conv_general_dilated)


def round_channels(channels: float) -> int:
  """The package's `round_filters` after scaling: nearest multiple of 8, never 10% below."""
  rounded = max(DIVISOR, int(channels + DIVISOR / 2) // DIVISOR * DIVISOR)
  return int(rounded + DIVISOR if rounded < 0.9 * channels else rounded)


def block_table(variant: int, width: float = 1.0) -> list[Stage]:
  """The stages of Lite`variant`, channels also multiplied by `width` (1.0: the package's)."""
  width_coefficient, depth_coefficient, _ = VARIANTS[variant]
  scale = lambda c: round_channels(c * width)
  stages = []
  for index, stage in enumerate(STAGES):
    fixed = index in (0, len(STAGES) - 1)  # first and last stage repeats are not scaled
    stages.append(stage._replace(
        repeats=stage.repeats if fixed else math.ceil(depth_coefficient * stage.repeats),
        in_channels=scale(STEM_CHANNELS if index == 0 else
                          round_channels(stage.in_channels * width_coefficient)),
        out_channels=scale(round_channels(stage.out_channels * width_coefficient))))
  return stages


def drop_connect(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
  """Zeroes whole examples of x (B, ...) with probability `rate`, scales the rest by 1/(1-rate)."""
  keep = jax.random.bernoulli(rng, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand (if expand > 1), kxk depthwise with the stride, 1x1 project,
  identity skip (with drop-connect in training) when the shape is kept."""
  stage: Stage
  stride: int
  in_channels: int
  drop_connect_rate: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(resnet.BatchNorm, dtype=self.dtype, **BN)
    channels = self.in_channels * self.stage.expand
    x = inputs
    if self.stage.expand != 1:
      x = conv(channels, (1, 1), name="expand_conv")(x)
      x = nn.relu6(norm(name="bn0")(x, train))
    k = self.stage.kernel
    x = conv(channels, (k, k), (self.stride, self.stride), feature_group_count=channels,
             name="depthwise_conv")(x)
    x = nn.relu6(norm(name="bn1")(x, train))
    x = conv(self.stage.out_channels, (1, 1), name="project_conv")(x)
    x = norm(name="bn2")(x, train)
    if self.stride != 1 or self.in_channels != self.stage.out_channels:
      return x
    if train and self.drop_connect_rate:
      x = drop_connect(x, self.drop_connect_rate, self.make_rng("dropout"))
    return x + inputs


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite{0..4} on NHWC images; in training, drop-connect and dropout draw from the
  'dropout' RNG stream (`apply(..., rngs={'dropout': key})`) unless their rates are 0.

  Attributes:
    variant: 0..4 (Lite0 .. Lite4).
    width: multiplier on every channel count, stem and head included (1.0 is the package's model;
      small values give fast test models of the same topology).
    num_classes: size of the `fc` head (ImageNet: 1000); 0 builds no head.
    dropout_rate: before `fc` in training; None takes the variant's (0.2 or 0.3).
    drop_connect_rate: in training, block i of n drops with rate * i / n (the package's 0.2).
    dtype: compute dtype of activations (bfloat16 on accelerators); parameters stay float32.
    remat: rematerialise each block in the backward pass (saves activation memory).
  """
  variant: int = 0
  width: float = 1.0
  num_classes: int = 1000
  dropout_rate: float | None = None
  drop_connect_rate: float = 0.2
  dtype: Any = jnp.float32
  remat: bool = False

  @property
  def feature_dim(self) -> int:
    """Size of the pooled feature: 1280 * width (rounded to a multiple of 8)."""
    return round_channels(HEAD_CHANNELS * self.width)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, with_logits: bool = False):
    """Maps images (B, H, W, 3) to pooled features (B, feature_dim), float32 for any compute
    dtype below it.

    With `with_logits`, returns (features, logits (B, num_classes)).
    """
    if self.variant not in VARIANTS:
      raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, "
                       f"got {self.variant}")
    if with_logits and not self.num_classes:
      raise ValueError("with_logits=True needs a model built with num_classes > 0")
    stages = block_table(self.variant, self.width)
    block = nn.remat(MBConv, static_argnums=(2,)) if self.remat else MBConv
    norm = functools.partial(resnet.BatchNorm, dtype=self.dtype, **BN)
    x = images.astype(self.dtype)
    x = Conv(stages[0].in_channels, (3, 3), (2, 2), dtype=self.dtype, name="conv_stem")(x)
    x = nn.relu6(norm(name="bn0")(x, train))
    num_blocks, index = sum(s.repeats for s in stages), 0
    for stage in stages:
      for repeat in range(stage.repeats):
        x = block(stage, stage.stride if repeat == 0 else 1,
                  stage.in_channels if repeat == 0 else stage.out_channels,
                  self.drop_connect_rate * index / num_blocks, dtype=self.dtype,
                  name=f"blocks_{index}")(x, train)
        index += 1
    x = Conv(self.feature_dim, (1, 1), dtype=self.dtype, name="conv_head")(x)
    x = nn.relu6(norm(name="bn1")(x, train))
    features = x.astype(jnp.promote_types(self.dtype, jnp.float32)).mean(axis=(1, 2))
    if not (with_logits or (self.num_classes and self.is_initializing())):
      return features
    dropout_rate = VARIANTS[self.variant][2] if self.dropout_rate is None else self.dropout_rate
    y = nn.Dropout(dropout_rate, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes, kernel_init=torch_default_init,
                      bias_init=resnet.linear_bias_init(features.shape[-1]), name="fc")(y)
    return (features, logits) if with_logits else features
