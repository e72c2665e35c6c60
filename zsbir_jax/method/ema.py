"""BKD's EMA teacher update (docs/METHOD.md, item 4), one pure function on pytrees."""
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def ema(teacher: PyTree, student: PyTree, momentum: float | jax.Array) -> PyTree:
  """Returns the new teacher theta_T <- mu theta_T + (1 - mu) theta_S, leaf by leaf.

  Applies to every leaf alike (parameters and batch statistics); the inputs are not modified and
  each new leaf has the teacher leaf's dtype.

  Args:
    teacher: the teacher's pytree of floating-point arrays.
    student: a pytree of the same structure and shapes.
    momentum: mu in [0, 1]; 0 copies the student, 1 keeps the teacher. A Python float is exact;
      a traced float32 mu rounds 1 - mu in float32 (relative error ~1e-5 at mu = 0.999).
  """
  def update(t, s):
    t = jnp.asarray(t)
    return (momentum * t + (1 - momentum) * jnp.asarray(s)).astype(t.dtype)

  return jax.tree.map(update, teacher, student)
