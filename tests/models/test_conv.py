"""zsbir_jax.models.conv: same values and gradients as lax's convolution, own path on CPU only."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from zsbir_jax.models import conv

NHWC = ("NHWC", "HWIO", "NHWC")
# Relative to the largest reference value; measured over these cases: <= 7.4e-16 in float64,
# <= 3.8e-7 in float32 (the summation order differs from XLA's convolution).
TOLERANCES = [(np.float64, 4e-15), (np.float32, 2e-6)]


def objective(conv_fn, strides, padding, **kwargs):
  """A scalar of the convolution whose cotangent is not constant (sin), as a loss would be."""
  return lambda x, w: jnp.sum(jnp.sin(conv_fn(x, w, strides, padding, **kwargs)))


def inputs(shape_x, shape_w, dtype, seed=0):
  rng = np.random.RandomState(seed)
  return (jnp.asarray(rng.randn(*shape_x), dtype), jnp.asarray(0.3 * rng.randn(*shape_w), dtype))


@pytest.mark.parametrize("strides,padding", [((1, 1), "SAME"), ((2, 2), "SAME"), ((2, 2), "VALID"),
                                             ((2, 1), ((0, 0), (0, 0)))])
@pytest.mark.parametrize("dtype,rtol", TOLERANCES)
def test_pointwise_values_and_gradients_match_lax(strides, padding, dtype, rtol):
  with jax.enable_x64(dtype == np.float64):
    x, w = inputs((3, 7, 6, 5), (1, 1, 5, 4), dtype)  # odd sizes: strides drop the last row
    ours = objective(conv.conv_general_dilated, strides, padding, dimension_numbers=NHWC)
    ref = objective(lax.conv_general_dilated, strides, padding, dimension_numbers=NHWC)
    want = lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
    got = conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(jnp.abs(want).max()))
    got = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, w)
    want = jax.jit(jax.grad(ref, argnums=(0, 1)))(x, w)
    for g, r in zip(got, want):
      assert g.dtype == r.dtype
      np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(jnp.abs(r).max()))


@pytest.mark.parametrize("window,strides,padding", [
    ((3, 3), (1, 1), "SAME"), ((3, 3), (2, 2), "SAME"), ((5, 5), (2, 2), "SAME"),
    ((3, 3), (2, 1), ((1, 1), (1, 1))), ((3, 3), (1, 1), "VALID"),
    ((2, 3), (1, 1), ((1, 0), (2, 1))),
])
@pytest.mark.parametrize("dtype,rtol", TOLERANCES)
def test_depthwise_values_and_gradients_match_lax(window, strides, padding, dtype, rtol):
  with jax.enable_x64(dtype == np.float64):
    x, w = inputs((3, 9, 8, 5), (*window, 1, 5), dtype)  # odd sizes: TF's SAME pads unevenly
    kwargs = dict(dimension_numbers=NHWC, feature_group_count=5)
    want = lax.conv_general_dilated(x, w, strides, padding, **kwargs)
    got = conv.conv_general_dilated(x, w, strides, padding, **kwargs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(jnp.abs(want).max()))
    ours = objective(conv.conv_general_dilated, strides, padding, **kwargs)
    ref = objective(lax.conv_general_dilated, strides, padding, **kwargs)
    got = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, w)
    want = jax.jit(jax.grad(ref, argnums=(0, 1)))(x, w)
    for g, r in zip(got, want):
      assert g.dtype == r.dtype
      np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(jnp.abs(r).max()))


def lowered_ops(fn, platform: str, *args) -> tuple[int, int]:
  """(convolutions, dot_generals) in the StableHLO of grad(fn) lowered for `platform`."""
  text = jax.jit(jax.grad(fn, argnums=(0, 1))).trace(*args).lower(
      lowering_platforms=(platform,)).as_text()
  return text.count("stablehlo.convolution"), text.count("stablehlo.dot_general")


def test_pointwise_is_matmuls_on_cpu_only():
  x, w = inputs((2, 6, 6, 8), (1, 1, 8, 4), np.float32)
  fn = objective(conv.conv_general_dilated, (2, 2), "SAME", dimension_numbers=NHWC)
  # Forward, input gradient and weight gradient: on CPU each is a dot_general; GPU and TPU keep
  # XLA's program (three convolutions), as plain autodiff of lax would give.
  assert lowered_ops(fn, "cpu", x, w) == (0, 3)
  plain = objective(lax.conv_general_dilated, (2, 2), "SAME", dimension_numbers=NHWC)
  for platform in ("cuda", "tpu"):
    assert lowered_ops(fn, platform, x, w) == lowered_ops(plain, platform, x, w) == (3, 0)


def test_depthwise_is_elementwise_on_cpu_only():
  x, w = inputs((2, 6, 6, 8), (3, 3, 1, 8), np.float32)
  fn = objective(conv.conv_general_dilated, (2, 2), "SAME", dimension_numbers=NHWC,
                 feature_group_count=8)
  assert lowered_ops(fn, "cpu", x, w) == (0, 0)
  plain = objective(lax.conv_general_dilated, (2, 2), "SAME", dimension_numbers=NHWC,
                    feature_group_count=8)
  for platform in ("cuda", "tpu"):
    assert lowered_ops(fn, platform, x, w) == lowered_ops(plain, platform, x, w) == (3, 0)


@pytest.mark.parametrize("shape_w,kwargs", [
    ((3, 3, 8, 4), dict(dimension_numbers=NHWC)),              # neither 1x1 nor depthwise
    ((1, 1, 4, 4), dict(dimension_numbers=NHWC, feature_group_count=2)),  # grouped
    ((3, 3, 1, 16), dict(dimension_numbers=NHWC, feature_group_count=8)),  # depth multiplier 2
    ((1, 1, 8, 4), dict(dimension_numbers=NHWC, rhs_dilation=(2, 2))),
    ((4, 8, 1, 1), dict(dimension_numbers=("NCHW", "OIHW", "NCHW"))),      # other layout
])
def test_other_convolutions_are_lax_unchanged(shape_w, kwargs):
  shape_x = (2, 8, 6, 6) if kwargs["dimension_numbers"][0] == "NCHW" else (2, 6, 6, 8)
  x, w = inputs(shape_x, shape_w, np.float32)
  fn = objective(conv.conv_general_dilated, (1, 1), "SAME", **kwargs)
  assert lowered_ops(fn, "cpu", x, w) == (3, 0)
  ref = objective(lax.conv_general_dilated, (1, 1), "SAME", **kwargs)
  for g, r in zip(jax.grad(fn, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
    np.testing.assert_array_equal(g, r)
