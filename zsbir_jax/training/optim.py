"""Optimizers and learning-rate schedules, from the `optim` block of an experiment config.

Default (SAKE's, the lineage both papers compare against): Adam, lr 1e-4, weight decay 5e-4
added to the gradient as torch.optim.Adam does (L2, not decoupled), lr0 * 0.001^(epoch / epochs)
stepped once per epoch. Options: AdamW (decoupled decay), SGD with momentum, linear warm-up and
cosine decay, a learning-rate multiplier for the backbone relative to the heads, and gradient
accumulation over several calls of the step (`optax.MultiSteps`).
"""
from typing import Any

import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(config: Any, steps_per_epoch: int) -> optax.Schedule:
  """The base (heads') learning rate as a function of the optimizer step."""
  total_steps = config.epochs * steps_per_epoch
  if config.schedule == "sake":
    def schedule(step):
      epoch = jnp.floor_divide(step, steps_per_epoch)
      return config.lr * jnp.power(0.001, epoch / config.epochs)
    return schedule
  if config.schedule == "cosine":
    warmup = int(config.warmup_epochs * steps_per_epoch)
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, max(warmup, 1), total_steps)
  if config.schedule == "constant":
    return optax.constant_schedule(config.lr)
  raise ValueError(f"optim.schedule must be 'sake', 'cosine' or 'constant', got {config.schedule!r}")


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
    tx = optax.MultiSteps(tx, every_k_schedule=config.grad_accum_steps)
  return tx
