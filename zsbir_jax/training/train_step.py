"""One compiled training update: a loss configuration's objective, optimizer and EMA teacher.

`make_train_step` returns the pure `train_step(state, batch) -> (state, metrics)`;
`jit_train_step` compiles it with explicit shardings on a mesh (batch split over 'data', state
replicated or FSDP-split, the old state donated). Batch norm statistics are means over the
whole global batch: with the batch sharded, XLA computes them with cross-device reductions.
"""
from typing import Any

import jax
import jax.numpy as jnp
import optax

from zsbir_jax import sharding
from zsbir_jax.method import ema
from zsbir_jax.method import objective
from zsbir_jax.models import backbones
from zsbir_jax.training import train_state

Batch = dict[str, jax.Array]


def make_train_step(
    model: Any,
    optimizer: optax.GradientTransformation,
    loss_config: Any,
    imagenet_teacher: backbones.Backbone | None = None,
    seed: int = 0,
):
  """The pure training step of a loss configuration (see `objective.make`).

  Args:
    model: the model the loss configuration trains (a `retrieval.RetrievalModel` for the
      recipes, a backbone with a classifier for classification); an EMA teacher shares it.
    optimizer: from `optim.make_optimizer`.
    loss_config: the `loss` block of the experiment config.
    imagenet_teacher: the frozen pretrained backbone (with `fc`) for SAKE's online targets; its
      variables are `state.frozen['imagenet_teacher']`.
    seed: the step's random key (EfficientNet-Lite's drop-connect and dropout; a ResNet draws
      none) is fold_in(PRNGKey(seed), state.step): a function of the step alone, so a resumed
      run draws what the uninterrupted one did, and the state needs no key.

  Returns:
    train_step(state, batch) -> (new state, metrics dict of scalars, with 'grad_norm').
  """
  recipe = objective.make(model, loss_config, imagenet_teacher)

  def train_step(state: train_state.TrainState, batch: Batch):
    targets = recipe.targets(state.frozen, state.teacher, batch["image"])
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), state.step)
    (_, (metrics, batch_stats)), grads = jax.value_and_grad(recipe.loss, has_aux=True)(
        state.params, state.batch_stats, batch, targets, rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    teacher = state.teacher
    if recipe.ema_momentum is not None:
      new_teacher = ema.ema(teacher, {"params": params, "batch_stats": batch_stats},
                            recipe.ema_momentum)
      # With gradient accumulation the parameters only move every k calls; so does the teacher.
      stepped = (opt_state.mini_step == 0
                 if isinstance(opt_state, optax.MultiStepsState) else True)
      teacher = jax.tree.map(lambda new, old: jnp.where(stepped, new, old), new_teacher, teacher)
    metrics["grad_norm"] = optax.tree.norm(grads)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, teacher=teacher)
    return new_state, metrics

  return train_step


def jit_train_step(train_step, mesh: jax.sharding.Mesh, state_shardings: Any):
  """`train_step` compiled for `mesh`: batch over 'data', state as given, old state donated."""
  return jax.jit(
      train_step,
      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
      out_shardings=(state_shardings, sharding.replicated(mesh)),
      donate_argnums=0)
