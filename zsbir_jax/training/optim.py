"""Optimizers and learning-rate schedules, from the `optim` block of an experiment config.

Default (SAKE's, the lineage both papers compare against): Adam, lr 1e-4, weight decay 5e-4
added to the gradient as torch.optim.Adam does (L2, not decoupled), lr0 * 0.001^(epoch / epochs)
stepped once per epoch. Options: AdamW (decoupled decay), SGD with momentum, linear warm-up and
cosine decay, a learning-rate multiplier for the backbone relative to the heads, and gradient
accumulation over several calls of the step (`optax.MultiSteps`: k calls with the mean of their
gradients make one update, the same update as one call on their concatenated batches).
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def num_updates(config: Any, steps_per_epoch: int) -> int:
  """Parameter updates in a run: one per `grad_accum_steps` calls of the training step."""
  calls = config.epochs * steps_per_epoch
  if calls % config.grad_accum_steps:
    raise ValueError(f"optim.grad_accum_steps = {config.grad_accum_steps} must divide the run's "
                     f"{config.epochs} epochs x {steps_per_epoch} steps = {calls} steps")
  return calls // config.grad_accum_steps


def learning_rate_schedule(config: Any, steps_per_epoch: int) -> optax.Schedule:
  """The base (heads') learning rate of update n = 0, 1, ... (real updates, not step calls).

  With gradient accumulation the optimizer counts only real updates (`optax.MultiSteps` advances
  the inner count once per k calls), so the schedule is laid out over `num_updates`: 'cosine'
  warms up linearly from 0 to `lr` over `warmup_epochs` (none: the first update uses `lr`) and
  decays to 0 exactly at the last update; 'sake' steps down by epoch, the epoch of an update
  being that of its first micro-batch.
  """
  accum = config.grad_accum_steps
  last = num_updates(config, steps_per_epoch) - 1
  if config.schedule == "sake":
    def schedule(n):
      epoch = jnp.floor_divide(n * accum, steps_per_epoch)
      return config.lr * jnp.power(0.001, epoch / config.epochs)
    return schedule
  if config.schedule == "cosine":
    warmup = int(config.warmup_epochs * steps_per_epoch) // accum
    def schedule(n):
      progress = jnp.clip((n - warmup) / max(last - warmup, 1), 0.0, 1.0)
      decayed = 0.5 * config.lr * (1 + jnp.cos(jnp.pi * progress))
      return decayed if warmup == 0 else jnp.where(n < warmup, config.lr * n / warmup, decayed)
    return schedule
  if config.schedule == "constant":
    return optax.constant_schedule(config.lr)
  raise ValueError(
      f"optim.schedule must be 'sake', 'cosine' or 'constant', got {config.schedule!r}")


def step_learning_rate(config: Any, steps_per_epoch: int) -> Callable[[int], float]:
  """For logging: the heads' rate of the update that training-step call `step` (1, 2, ...) feeds.

  With accumulation over k calls, calls k(n - 1) + 1 ... kn feed update n - 1 (0-based), which
  the k-th of them applies.
  """
  schedule = learning_rate_schedule(config, steps_per_epoch)
  return lambda step: float(schedule((step - 1) // config.grad_accum_steps))


def _base_optimizer(config: Any, learning_rate: optax.Schedule) -> optax.GradientTransformation:
  if config.name == "adam":
    return optax.chain(optax.add_decayed_weights(config.weight_decay),
                       optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps),
                       optax.scale_by_learning_rate(learning_rate))
  if config.name == "adamw":
    return optax.adamw(learning_rate, b1=config.b1, b2=config.b2, eps=config.eps,
                       weight_decay=config.weight_decay)
  if config.name == "sgd":
    return optax.chain(optax.add_decayed_weights(config.weight_decay),
                       optax.sgd(learning_rate, momentum=config.momentum, nesterov=config.nesterov))
  raise ValueError(f"optim.name must be 'adam', 'adamw' or 'sgd', got {config.name!r}")


def param_groups(params: Any) -> Any:
  """'backbone' for the backbone's parameters, 'heads' for the rest (same tree structure)."""
  return {name: jax.tree.map(lambda _, n=name: "backbone" if n == "backbone" else "heads", sub)
          for name, sub in params.items()}


def make_optimizer(config: Any, steps_per_epoch: int) -> optax.GradientTransformation:
  """The optimizer of an `optim` config; the backbone's rate is `backbone_lr_mult` x the heads'."""
  schedule = learning_rate_schedule(config, steps_per_epoch)
  backbone_schedule = lambda step: config.backbone_lr_mult * schedule(step)
  tx = optax.multi_transform(
      {"backbone": _base_optimizer(config, backbone_schedule),
       "heads": _base_optimizer(config, schedule)},
      param_groups)
  if config.grad_accum_steps > 1:
    # The gradients accumulate in the parameters' dtype (optax's default is float32).
    tx = optax.MultiSteps(tx, every_k_schedule=config.grad_accum_steps, accumulator_dtype=None)
  return tx
