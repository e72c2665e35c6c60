"""A functional ResNet with torchvision's exact structure, so torchvision weights load one-to-one.

torchvision v1.5: the stride of a bottleneck sits on its 3x3 conv; explicit paddings ((3, 3) on
the 7x7 stem, (1, 1) on every 3x3 conv and on the max-pool, never 'SAME', whose asymmetric padding
differs from torch's); BatchNorm with torch's semantics (epsilon 1e-5, running statistics with
momentum 0.1 in torch's convention, 0.9 in Flax's, and the *unbiased* batch variance in the
running variance). Images are NHWC. Module names mirror torchvision's keys (`conv1`, `bn1`,
`layer1_0`, `downsample_conv`, `fc`, ...), see `torchvision_weights.py`.

`width` multiplies every channel count (torchvision's base of 64), so tests and CPU runs can use
small models with the same topology; `width=1` is torchvision's model.
"""
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from zsbir_jax.models import conv as conv_lib

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
BASE_CHANNELS = 64

# torchvision's initialisers: kaiming-normal (fan-out) convs; nn.Linear's default uniform fc.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


# Every convolution of the network: bias-free, torchvision's init, and `conv.py`'s CPU forms.
Conv = functools.partial(nn.Conv, use_bias=False, kernel_init=conv_init,
                         conv_general_dilated=conv_lib.conv_general_dilated)


def linear_bias_init(fan_in: int) -> Callable[..., jax.Array]:
  """torch.nn.Linear's bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = fan_in**-0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class BatchNorm(nn.Module):
  """torch.nn.BatchNorm2d semantics over the batch and spatial axes of NHWC inputs.

  Train mode normalises with the biased batch variance and updates the running variance with
  the unbiased one (n / (n - 1)), as torch does; Flax's own BatchNorm uses the biased variance for
  both, which breaks parity of the running statistics. Statistics are computed in at least float32
  (float32 for bfloat16 compute). Under `jax.jit` with a batch sharded over devices the means are
  global.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    channels = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
    xf = x.astype(jnp.promote_types(self.dtype, jnp.float32))
    if train:
      axes = tuple(range(x.ndim - 1))
      mean = xf.mean(axes)
      var = jnp.square(xf - mean).mean(axes)
      if not self.is_initializing():
        n = x.size // channels
        unbiased = var * (n / max(n - 1, 1))
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * unbiased
    else:
      mean, var = running_mean.value, running_var.value
    y = (xf - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
    return y.astype(self.dtype)


class BasicBlock(nn.Module):
  """ResNet-18/34 block: two 3x3 convs; the first carries the stride."""
  channels: int
  stride: int
  downsample: bool
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(BatchNorm, dtype=self.dtype)
    y = conv(self.channels, (3, 3), (self.stride, self.stride), ((1, 1), (1, 1)), name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y, train))
    y = conv(self.channels, (3, 3), (1, 1), ((1, 1), (1, 1)), name="conv2")(y)
    y = norm(name="bn2")(y, train)
    if self.downsample:
      x = conv(self.channels, (1, 1), (self.stride, self.stride), "VALID", name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x, train)
    return nn.relu(y + x)


class Bottleneck(nn.Module):
  """ResNet-50/101 block (v1.5): 1x1 reduce, 3x3 with the stride, 1x1 expand by 4."""
  channels: int
  stride: int
  downsample: bool
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(BatchNorm, dtype=self.dtype)
    y = conv(self.channels, (1, 1), (1, 1), "VALID", name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y, train))
    y = conv(self.channels, (3, 3), (self.stride, self.stride), ((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y, train))
    y = conv(self.channels * 4, (1, 1), (1, 1), "VALID", name="conv3")(y)
    y = norm(name="bn3")(y, train)
    if self.downsample:
      x = conv(self.channels * 4, (1, 1), (self.stride, self.stride), "VALID",
               name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x, train)
    return nn.relu(y + x)


class ResNet(nn.Module):
  """torchvision ResNet-{18,34,50,101} on NHWC images.

  Attributes:
    depth: 18, 34, 50 or 101.
    width: multiplier on every channel count (1.0 is torchvision's model).
    num_classes: size of the `fc` head (ImageNet: 1000); 0 builds no head.
    dtype: compute dtype of activations (bfloat16 on accelerators); parameters stay float32.
    remat: rematerialise each residual block in the backward pass (saves activation memory).
  """
  depth: int = 50
  width: float = 1.0
  num_classes: int = 1000
  dtype: Any = jnp.float32
  remat: bool = False

  @property
  def block_class(self) -> type[nn.Module]:
    if self.depth not in STAGE_SIZES:
      raise ValueError(f"ResNet depth must be one of {sorted(STAGE_SIZES)}, got {self.depth}")
    return BasicBlock if self.depth < 50 else Bottleneck

  @property
  def feature_dim(self) -> int:
    """Size of the pooled feature: 2048 * width for ResNet-50/101, 512 * width for 18/34."""
    return int(BASE_CHANNELS * self.width) * 8 * self.block_class.expansion

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, with_logits: bool = False):
    """Maps images (B, H, W, 3) to pooled features (B, feature_dim), float32 for any compute
    dtype below it.

    With `with_logits`, returns (features, logits (B, num_classes)).
    """
    if with_logits and not self.num_classes:
      raise ValueError("with_logits=True needs a ResNet built with num_classes > 0")
    expansion = self.block_class.expansion
    block = nn.remat(self.block_class, static_argnums=(2,)) if self.remat else self.block_class
    base = int(BASE_CHANNELS * self.width)
    x = images.astype(self.dtype)
    x = Conv(base, (7, 7), (2, 2), ((3, 3), (3, 3)), dtype=self.dtype, name="conv1")(x)
    x = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(x, train))
    x = nn.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(STAGE_SIZES[self.depth]):
      channels = base * 2**stage
      for index in range(num_blocks):
        stride = 2 if stage > 0 and index == 0 else 1
        downsample = index == 0 and (stride != 1 or x.shape[-1] != channels * expansion)
        x = block(channels, stride, downsample, dtype=self.dtype,
                  name=f"layer{stage + 1}_{index}")(x, train)
    features = x.astype(jnp.promote_types(self.dtype, jnp.float32)).mean(axis=(1, 2))
    if not (with_logits or (self.num_classes and self.is_initializing())):
      return features
    logits = nn.Dense(self.num_classes, kernel_init=linear_init,
                      bias_init=linear_bias_init(features.shape[-1]), name="fc")(features)
    return (features, logits) if with_logits else features
