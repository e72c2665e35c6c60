"""Convolution with faster 1x1 convolutions on CPU, for `flax.linen.Conv(conv_general_dilated=)`.

A 1x1 convolution, 36 of a ResNet-50's 53 and the expand/project convolutions of an
EfficientNet, is a matrix product over the batch and spatial positions: Y = X W forward,
dX = dY W^T and dW = X^T dY backward. XLA:CPU runs these products several times faster than it
runs the same 1x1 convolution through its convolution kernels, and its weight gradient, a
"backward-filter" convolution with the batch and feature axes of both operands transposed, is
the slowest of the three (`experiments.benchmarks.conv_layers` times each layer,
`experiments.benchmarks.step_profile` the whole step). `conv_general_dilated` is a drop-in for
`lax.conv_general_dilated` that takes the three products on CPU and XLA's own convolution
everywhere else (`lax.platform_dependent`, chosen when the program is lowered), so GPU and TPU
programs are unchanged. Other convolutions (3x3, 7x7, depthwise) are XLA's on every platform.
Values agree with XLA's convolution to float rounding (tests/models/test_conv.py).
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
  """`lax.conv_general_dilated`; NHWC/HWIO 1x1 convolutions get the matmul weight gradient."""
  if _is_pointwise(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, batch_group_count, preferred_element_type):
    return _pointwise_conv(tuple(window_strides), precision, lhs, rhs)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


def _is_pointwise(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                  feature_group_count, batch_group_count, preferred_element_type) -> bool:
  """Whether the convolution is a plain NHWC/HWIO 1x1 one (any strides, no padding)."""
  if lhs.ndim != 4 or rhs.shape[:2] != (1, 1):
    return False
  if (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    return False
  # 'SAME' and 'VALID' both pad a 1x1 window by nothing; explicit padding must be zero.
  no_padding = isinstance(padding, str) or all(tuple(p) == (0, 0) for p in padding)
  return (no_padding and set(lhs_dilation or (1,)) == {1} and set(rhs_dilation or (1,)) == {1}
          and feature_group_count == 1 and batch_group_count == 1
          and preferred_element_type is None)


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
