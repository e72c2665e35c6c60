"""Tests of zsbir_jax.method.ema: exact against the NumPy formula, pure, and on every leaf."""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zsbir_jax.method.ema import ema


def make_state(seed):
  """A params + batch-statistics pytree like a Flax ResNet's, as NumPy float32 leaves."""
  rng = np.random.default_rng(seed)
  f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
  return {
      "params": {"conv": {"kernel": f32(3, 3, 2, 4)}, "bn": {"scale": f32(4), "bias": f32(4)},
                 "embed": {"kernel": f32(4, 5), "bias": f32(5)}},
      "batch_stats": {"bn": {"mean": f32(4), "var": np.abs(f32(4))}},
  }


def np_ema(teacher, student, momentum):
  return jax.tree.map(
      lambda t, s: np.float32(momentum) * t + np.float32(1 - momentum) * s, teacher, student)


@pytest.mark.parametrize("momentum", [0.999, 0.9, 0.3])
def test_ema_matches_numpy_formula(momentum):
  teacher, student = make_state(0), make_state(1)
  want = np_ema(teacher, student, momentum)
  got = ema(teacher, student, momentum)
  assert jax.tree.structure(got) == jax.tree.structure(teacher)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, w)  # eager: the same float32 operations, bit for bit
  # Compiled, XLA may fuse a multiply-add: at most one rounding of the larger product apart.
  jitted = jax.jit(ema, static_argnums=2)(teacher, student, momentum)
  for g, w, t, s in zip(*map(jax.tree.leaves, (jitted, want, teacher, student))):
    bound = np.spacing(np.abs(np.float32(momentum) * t) + np.abs(np.float32(1 - momentum) * s))
    assert np.all(np.abs(np.asarray(g) - w) <= bound)


def test_ema_is_pure():
  teacher, student = make_state(2), make_state(3)
  teacher_before, student_before = copy.deepcopy(teacher), copy.deepcopy(student)
  new = ema(teacher, student, 0.9)
  jax.tree.map(np.testing.assert_array_equal, teacher, teacher_before)
  jax.tree.map(np.testing.assert_array_equal, student, student_before)
  # Same inputs, same output.
  jax.tree.map(np.testing.assert_array_equal, ema(teacher, student, 0.9), new)


@pytest.mark.parametrize("momentum, pick", [(0.0, "student"), (1.0, "teacher")])
def test_ema_momentum_edges(momentum, pick):
  teacher, student = make_state(4), make_state(5)
  want = {"student": student, "teacher": teacher}[pick]
  jax.tree.map(np.testing.assert_array_equal, ema(teacher, student, momentum), want)


def test_ema_traced_momentum_and_repeated_steps():
  # Momentum as a traced scalar (e.g. a schedule); n steps toward a fixed student leave the
  # teacher at s + mu^n (t - s).
  teacher, student = make_state(6), make_state(7)
  step = jax.jit(ema)
  new = teacher
  for _ in range(5):
    new = step(new, student, jnp.float32(0.8))
  want = jax.tree.map(lambda t, s: s + 0.8**5 * (t - s), teacher, student)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), new, want)


def test_ema_preserves_leaf_dtypes():
  teacher = {"w": jnp.ones(3, jnp.bfloat16), "stats": jnp.zeros(2, jnp.float32)}
  student = {"w": jnp.full(3, 3.0, jnp.bfloat16), "stats": jnp.ones(2, jnp.float32)}
  new = ema(teacher, student, 0.75)
  assert new["w"].dtype == jnp.bfloat16 and new["stats"].dtype == jnp.float32
  np.testing.assert_array_equal(new["w"].astype(np.float32), 1.5)
  np.testing.assert_array_equal(new["stats"], 0.25)


def test_ema_rejects_mismatched_trees():
  teacher, student = make_state(8), make_state(9)
  del student["batch_stats"]
  with pytest.raises(ValueError):
    ema(teacher, student, 0.9)
