"""The train state: one pytree holding everything a training step reads and writes.

`teacher` is BKD's EMA teacher ({'params', 'batch_stats'} of the retrieval model), empty when
the recipe has no cross-modal KD. `frozen` holds the constants a recipe's losses read and no
step changes: 'class_targets' (C x K class-wise teacher probabilities, EFF) and/or
'imagenet_teacher' (the pretrained backbone with its classifier, SAKE's online targets). They
live in the state so that the step is `train_step(state, batch)` and checkpoints are complete.
"""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from zsbir_jax.models import retrieval


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  teacher: Any
  frozen: Any


def create(
    model: retrieval.RetrievalModel,
    optimizer: optax.GradientTransformation,
    rng: jax.Array,
    image_size: int,
    *,
    pretrained_backbone: dict[str, Any] | None = None,
    with_teacher: bool = False,
    frozen: dict[str, Any] | None = None,
) -> TrainState:
  """A fresh state: random init, or the pretrained backbone with SVD-initialised heads.

  Args:
    model: the retrieval model.
    optimizer: from `optim.make_optimizer`.
    rng: a `jax.random.PRNGKey` for the initialisation (a step's random key is a function of
      its step number, see `train_step`, so the state keeps no key).
    image_size: the side of the (square) training images, for shape inference.
    pretrained_backbone: the variables of a backbone of the model's family and size with an
      `fc` of model.num_teacher_classes (`retrieval.from_pretrained`).
    with_teacher: start an EMA teacher equal to the student.
    frozen: constants for the losses (see module docstring).
  """
  init_rng, _ = jax.random.split(rng)  # The split keeps the initialisation of earlier runs.
  images = jnp.zeros((1, image_size, image_size, 3))
  # Jitted: one compiled program instead of op-by-op dispatch of every initialiser. At the top
  # level on CPU it is compiled without XLA's backend optimisations: it runs once, and they take
  # most of the start-up there (its values differ from an optimised build's in the last bit of
  # some). Under jax.jit or jax.eval_shape it is part of the caller's program.
  top_level = not isinstance(images, jax.core.Tracer)
  options = ({"xla_backend_optimization_level": 0}
             if top_level and jax.default_backend() == "cpu" else None)
  variables = jax.jit(model.init, static_argnames="train", compiler_options=options)(
      init_rng, images, train=False)
  params, batch_stats = variables["params"], variables["batch_stats"]
  if pretrained_backbone is not None:
    params, batch_stats = retrieval.from_pretrained(params, batch_stats, pretrained_backbone)
  return from_variables({"params": params, "batch_stats": batch_stats}, optimizer,
                        with_teacher=with_teacher, frozen=frozen)


def from_variables(
    variables: dict[str, Any],
    optimizer: optax.GradientTransformation,
    *,
    with_teacher: bool = False,
    frozen: dict[str, Any] | None = None,
) -> TrainState:
  """A state at step 0 that trains `variables` ({'params', 'batch_stats'}) of any model."""
  # Fresh copies (jnp.array copies): the step donates the state, and no two leaves may share a
  # buffer (the teacher starts equal to the student; frozen arrays may alias the backbone's).
  copy = lambda tree: jax.tree.map(jnp.array, tree)
  params, batch_stats = copy(variables["params"]), copy(variables["batch_stats"])
  teacher = copy({"params": params, "batch_stats": batch_stats}) if with_teacher else {}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=optimizer.init(params), teacher=teacher, frozen=copy(frozen or {}))
