"""Convolution with CPU forms of the 1x1 and depthwise ones, for `nn.Conv(conv_general_dilated=)`.

XLA:CPU's convolution kernels are slow for two kinds of layer that these networks are full of
(`experiments.benchmarks.conv_layers` times every layer's three passes against PyTorch;
`experiments.benchmarks.step_profile` the whole step):
- A 1x1 convolution (36 of a ResNet-50's 53; the expand and project convolutions of an
  EfficientNet) is a matrix product over the batch and spatial positions: Y = X W forward,
  dX = dY W^T and dW = X^T dY backward. XLA:CPU runs these products several times faster than
  the same convolution, and its weight gradient, a "backward-filter" convolution with the batch
  and feature axes of both operands transposed, is the slowest of the three.
- A depthwise convolution (one filter per channel, EfficientNet's k x k layers) is a sum over
  the window's taps of the input, read at the tap's positions, times the tap's per-channel
  weights: elementwise work, one tap per step of a `lax.scan`, where XLA's grouped convolution
  runs tens of times slower. The input gradient is the same kind of sum; the weight gradient
  reduces one tap at a time (`_depthwise_conv`).
`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` that takes these forms on CPU
and XLA's own convolution everywhere else (`lax.platform_dependent`, chosen when the program is
lowered), so GPU and TPU programs are unchanged. Other convolutions (3x3, 7x7) are XLA's on
every platform. Values agree with XLA's convolution to float rounding
(tests/models/test_conv.py).
"""
import functools
from typing import Any, Sequence

import jax
from jax import lax
import jax.numpy as jnp

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Any, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> jax.Array:
  """`lax.conv_general_dilated`; plain NHWC/HWIO 1x1 and depthwise convolutions take the CPU
  formulations of the module docstring."""
  plain = (lhs.ndim == 4 and batch_group_count == 1 and preferred_element_type is None
           and set(lhs_dilation or (1,)) == {1} and set(rhs_dilation or (1,)) == {1}
           and (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
                == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)))
  strides = tuple(window_strides)
  if plain and isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
  if plain:
    padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  unpadded = plain and set(sum(padding, ())) == {0}
  if unpadded and feature_group_count == 1 and rhs.shape[:2] == (1, 1):
    return _pointwise_conv(strides, precision, lhs, rhs)
  if plain and feature_group_count == lhs.shape[-1] == rhs.shape[-1] and rhs.shape[2] == 1:
    return lax.platform_dependent(
        lhs, rhs, cpu=functools.partial(_depthwise_conv, strides, padding),
        default=functools.partial(
            lax.conv_general_dilated, window_strides=strides, padding=padding,
            dimension_numbers=_NHWC, feature_group_count=feature_group_count,
            precision=precision))
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _depthwise_conv(strides: tuple[int, int], padding: tuple[tuple[int, int], ...],
                    x: jax.Array, w: jax.Array) -> jax.Array:
  """Depthwise convolution, x (N, H, W, C), w (kh, kw, 1, C) -> (N, H', W', C): `_tap_sum`.

  The input gradient is again a tap sum, of the output gradient spread over the input grid
  (interior padding by the stride) with the window flipped; the weight gradient reduces one tap
  at a time. Every pass is one `lax.scan` over the k^2 taps, so no program grows with the
  window: unrolled over the taps (and autodiff's k^2 pads and reductions still more) they
  compiled several times slower than XLA's convolution in EfficientNet-Lite0, for a ~20%
  faster step (SCALING.md).
  """
  return _tap_sum(strides, padding, x, w)


def _phases(x, padding, strides):
  """x padded and split by stride phase, (sh, sw, N, ceil(H'/sh), ceil(W'/sw), C), in at least
  float32: tap (a, b) of a strided window reads the contiguous block at
  (a % sh, b % sw, a // sh, b // sw)."""
  (sh, sw) = strides
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0))).astype(jnp.promote_types(x.dtype, jnp.float32))
  hq, wq = -(-xp.shape[1] // sh), -(-xp.shape[2] // sw)
  xp = jnp.pad(xp, ((0, 0), (0, hq * sh - xp.shape[1]), (0, wq * sw - xp.shape[2]), (0, 0)))
  return xp.reshape(x.shape[0], hq, sh, wq, sw, x.shape[-1]).transpose(2, 4, 0, 1, 3, 5)


def _tap_block(phases, strides, kw, tap, shape):
  a, b = tap // kw, tap % kw
  sh, sw = strides
  return lax.dynamic_slice(phases, (a % sh, b % sw, 0, a // sh, b // sw, 0), (1, 1, *shape))[0, 0]


def _tap_sum(strides, padding, x, w):
  """The sum over the window's taps of the input read at that tap's positions times the tap's
  weights, one tap per step of a `lax.scan` (the program does not grow with the window),
  accumulated in at least float32."""
  kh, kw = w.shape[:2]
  phases = _phases(x, padding, strides)
  out_h = (x.shape[1] + sum(padding[0]) - kh) // strides[0] + 1
  out_w = (x.shape[2] + sum(padding[1]) - kw) // strides[1] + 1
  shape = (x.shape[0], out_h, out_w, x.shape[-1])
  taps = w.reshape(kh * kw, x.shape[-1]).astype(phases.dtype)

  def add_tap(out, tap_and_weight):
    tap, weight = tap_and_weight
    return out + _tap_block(phases, strides, kw, tap, shape) * weight, None

  out, _ = lax.scan(add_tap, jnp.zeros(shape, phases.dtype), (jnp.arange(kh * kw), taps))
  return out.astype(jnp.result_type(x, w))


def _depthwise_fwd(strides, padding, x, w):
  return _tap_sum(strides, padding, x, w), (x, w)


def _depthwise_bwd(strides, padding, residuals, dy):
  x, w = residuals
  (sh, sw), (kh, kw) = strides, w.shape[:2]
  # Input position p gets dy[i] w[p + pad_low - i s]: a stride-1 tap sum over dy with s - 1
  # zeros between its rows and columns, padded so that its output has the input's size.
  spread = [(k - 1 - low, n - (m - 1) * s - 1 + low, s - 1)
            for n, m, k, s, (low, _) in zip(x.shape[1:3], dy.shape[1:3], (kh, kw), strides,
                                            padding)]
  dy_spread = lax.pad(dy, jnp.zeros((), dy.dtype), [(0, 0, 0), *spread, (0, 0, 0)])
  dx = _tap_sum((1, 1), ((0, 0), (0, 0)), dy_spread, w[::-1, ::-1])
  phases = _phases(x, padding, strides)
  dy = dy.astype(phases.dtype)

  def tap_grad(carry, tap):
    return carry, jnp.sum(_tap_block(phases, strides, kw, tap, dy.shape) * dy, axis=(0, 1, 2))

  _, dw = lax.scan(tap_grad, None, jnp.arange(kh * kw))
  return dx.astype(x.dtype), dw.reshape(w.shape).astype(w.dtype)


_depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _pointwise_conv(strides: tuple[int, int], precision: Any, x: jax.Array, w: jax.Array):
  """1x1 NHWC convolution, x (N, H, W, Ci), w (1, 1, Ci, Co) -> (N, H', W', Co)."""
  return lax.platform_dependent(
      x, w, cpu=functools.partial(_matmul_forward, strides, precision),
      default=functools.partial(_xla_conv, strides, precision))


def _xla_conv(strides, precision, x, w):
  return lax.conv_general_dilated(x, w, strides, ((0, 0), (0, 0)), dimension_numbers=_NHWC,
                                  precision=precision)


def _matmul(a: jax.Array, b: jax.Array, precision: Any) -> jax.Array:
  """a (..., K) @ b (K, M) -> (..., M), as one rank-2 product (the form XLA:CPU's library takes)."""
  out = lax.dot_general(a.reshape(-1, a.shape[-1]), b, (((1,), (0,)), ((), ())),
                        precision=precision)
  return out.reshape(*a.shape[:-1], b.shape[-1])


def _matmul_forward(strides, precision, x, w):
  # The strided 1x1 convolution reads every strides-th position.
  return _matmul(x[:, ::strides[0], ::strides[1], :], w[0, 0], precision)


def _pointwise_fwd(strides, precision, x, w):
  return _pointwise_conv(strides, precision, x, w), (x, w)


def _pointwise_bwd(strides, precision, residuals, dy):
  x, w = residuals

  def xla_grads(x, dy):
    return jax.vjp(lambda x, w: _xla_conv(strides, precision, x, w), x, w)[1](dy)

  def matmul_grads(x, dy):
    dx = _matmul(dy, w[0, 0].T, precision)
    # Positions the stride skipped get no gradient: spread dx back over x's grid.
    dx = lax.pad(dx, jnp.zeros((), dx.dtype),
                 [(0, 0, 0)] + [(0, n - (m - 1) * s - 1, s - 1)
                                for n, m, s in zip(x.shape[1:3], dx.shape[1:3], strides)]
                 + [(0, 0, 0)])
    xs = x[:, ::strides[0], ::strides[1], :]
    dw = lax.dot_general(xs.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1]),
                         (((0,), (0,)), ((), ())), precision=precision)
    return dx, dw.reshape(w.shape)

  dx, dw = lax.platform_dependent(x, dy, cpu=matmul_grads, default=xla_grads)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_pointwise_conv.defvjp(_pointwise_fwd, _pointwise_bwd)
