"""One compiled training update: every enabled loss, modality weighting, optimizer and EMA.

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
from zsbir_jax.models import resnet
from zsbir_jax.models import retrieval
from zsbir_jax.training import train_state

Batch = dict[str, jax.Array]


def make_train_step(
    model: retrieval.RetrievalModel,
    optimizer: optax.GradientTransformation,
    loss_config: Any,
    imagenet_teacher: resnet.ResNet | None = None,
):
  """The pure training step of a recipe.

  Args:
    model: the retrieval model (student and EMA teacher share it).
    optimizer: from `optim.make_optimizer`.
    loss_config: the `loss` block of the experiment config.
    imagenet_teacher: the frozen pretrained ResNet (with `fc`) for SAKE's online targets; its
      variables are `state.frozen['imagenet_teacher']`.

  Returns:
    train_step(state, batch) -> (new state, metrics dict of scalars). `batch` holds 'image'
    (B, H, W, 3) float32, 'label', 'domain' and 'partner' (B,) int32.
  """
  use_ema_teacher = bool(loss_config.kd.weight)
  online_skp = bool(loss_config.skp.weight) and loss_config.skp.targets == "online"

  def step_targets(state: train_state.TrainState, images: jax.Array) -> dict[str, jax.Array]:
    targets = {}
    if "class_targets" in state.frozen:
      targets["class_targets"] = state.frozen["class_targets"]
    if online_skp:
      _, logits = imagenet_teacher.apply(state.frozen["imagenet_teacher"], images,
                                         with_logits=True)
      targets["teacher_class_logits"] = jax.lax.stop_gradient(logits)
    if use_ema_teacher:
      _, seen_logits, _ = model.apply(state.teacher, images)
      targets["ema_seen_logits"] = jax.lax.stop_gradient(seen_logits)
    return targets

  def train_step(state: train_state.TrainState, batch: Batch):
    targets = step_targets(state, batch["image"])

    def loss_fn(params):
      e, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                               batch["image"], train=True, method=model.encode,
                               mutable=["batch_stats"])
      heads = lambda e: model.apply({"params": params}, e, method=model.heads)
      loss, metrics = objective.total_loss(e, heads, batch, targets, loss_config)
      return loss, (metrics, updates["batch_stats"])

    (_, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    teacher = state.teacher
    if use_ema_teacher:
      new_teacher = ema.ema(teacher, {"params": params, "batch_stats": batch_stats},
                            loss_config.ema_momentum)
      # With gradient accumulation the parameters only move every k calls; so does the teacher.
      stepped = (opt_state.mini_step == 0
                 if isinstance(opt_state, optax.MultiStepsState) else True)
      teacher = jax.tree.map(lambda new, old: jnp.where(stepped, new, old), new_teacher, teacher)
    metrics["grad_norm"] = optax.tree.norm(grads)
    rng, _ = jax.random.split(state.rng)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, teacher=teacher, rng=rng)
    return new_state, metrics

  return train_step


def jit_train_step(train_step, mesh: jax.sharding.Mesh, state_shardings: Any):
  """`train_step` compiled for `mesh`: batch over 'data', state as given, old state donated."""
  return jax.jit(
      train_step,
      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
      out_shardings=(state_shardings, sharding.replicated(mesh)),
      donate_argnums=0)
