"""The training objective: the enabled loss terms of a recipe, weighted and modality-balanced.

L = w^sk L^sk + w^ph L^ph + a_da L_da, where L^m = sum over the per-item terms t (cls, quad,
skp, kd) of a_t L_t^m (`losses.split_by_modality`), and w^m are BKD's gradient-weighted modality
weights computed from the gradients of L^sk and L^ph with respect to the embeddings (or 1 and 1
when `modality_weighting` is off). Reconstruction (METHOD.md item 6 leaves it open): one pair
of weights balances the *sum* of the per-item terms rather than one pair per term; distribution
alignment, a per-class term, is not split.

`config` is the `loss` block of an experiment config (see `experiments/configs/common.py`): each
term has a `weight` (0 disables it and skips its computation) and its own hyperparameters.
"""
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from zsbir_jax.method import losses
from zsbir_jax.models import retrieval

Array = jax.Array
PER_ITEM_TERMS = ("cls", "quad", "skp", "kd")


def per_item_terms(
    e: Array,
    heads: Callable[[Array], tuple[Array, Array]],
    batch: Mapping[str, Array],
    targets: Mapping[str, Array],
    config: Any,
) -> tuple[dict[str, tuple[Array, Array]], Array]:
  """The enabled per-item terms {name: (per_item (B,), valid (B,))} and the seen logits (B, C).

  Args:
    e: (B, D) student embeddings.
    heads: e -> (seen logits (B, C), teacher-class logits (B, K)), the student's heads.
    batch: 'label' (B,), 'domain' (B,), 'partner' (B,) (-1: no partner).
    targets: constants of the step: 'class_targets' (C, K) for class-wise skp,
      'teacher_class_logits' (B, K) for online skp, 'ema_seen_logits' (B, C) for kd.
    config: the loss config.
  """
  seen_logits, teacher_logits = heads(e)
  labels, domains = batch["label"], batch["domain"]
  terms = {}
  if config.cls.weight:
    terms["cls"] = losses.classification_loss(seen_logits, labels,
                                              label_smoothing=config.cls.label_smoothing)
  if config.quad.weight:
    terms["quad"] = losses.quadruplet_loss(retrieval.normalize(e), labels, domains,
                                           margin=config.quad.margin, mining=config.quad.mining)
  if config.skp.weight:
    if config.skp.targets == "classwise":
      terms["skp"] = losses.knowledge_preservation_loss(
          teacher_logits, labels, targets["class_targets"], temperature=config.skp.temperature)
    else:
      terms["skp"] = losses.online_knowledge_preservation_loss(
          teacher_logits, targets["teacher_class_logits"], domains,
          temperature=config.skp.temperature)
  if config.kd.weight:
    terms["kd"] = losses.cross_modal_kd_loss(seen_logits, targets["ema_seen_logits"],
                                             batch["partner"], tau=config.kd.tau)
  return terms, seen_logits


def total_loss(
    e: Array,
    heads: Callable[[Array], tuple[Array, Array]],
    batch: Mapping[str, Array],
    targets: Mapping[str, Array],
    config: Any,
) -> tuple[Array, dict[str, Array]]:
  """The scalar training loss and its metrics (every term's mean, the modality weights, accuracy).

  Arguments as for `per_item_terms`. Differentiable with respect to e and the heads' parameters
  (closed over by `heads`); the modality weights are constants (stop_gradient).
  """
  domains = batch["domain"]

  def modality_parts(e):
    terms, seen_logits = per_item_terms(e, heads, batch, targets, config)
    parts = jnp.zeros(2)
    for name, (per_item, valid) in terms.items():
      parts += config[name].weight * jnp.stack(losses.split_by_modality(per_item, valid, domains))
    return parts, (terms, seen_logits)

  parts, vjp, (terms, seen_logits) = jax.vjp(modality_parts, e, has_aux=True)
  if config.modality_weighting:
    (grad_sketch,), (grad_photo,) = vjp(jnp.array([1.0, 0.0])), vjp(jnp.array([0.0, 1.0]))
    weights = jnp.stack(losses.modality_weights(
        *losses.modality_grad_norms(grad_sketch, grad_photo, domains), config.modality_eps))
  else:
    weights = jnp.ones(2)
  loss = jnp.dot(jax.lax.stop_gradient(weights), parts)
  metrics = {f"loss_{name}": jnp.sum(per_item) / jnp.maximum(jnp.sum(valid), 1)
             for name, (per_item, valid) in terms.items()}
  if config.da.weight:
    metrics["loss_da"] = losses.distribution_alignment_loss(seen_logits, batch["label"], domains)
    loss += config.da.weight * metrics["loss_da"]
  metrics.update(
      loss=loss, modality_weight_sketch=weights[0], modality_weight_photo=weights[1],
      accuracy=jnp.mean(jnp.argmax(seen_logits, -1) == batch["label"]))
  return loss, metrics
