"""The training objective: the enabled loss terms of a recipe, weighted and modality-balanced.

L = w^sk L^sk + w^ph L^ph + a_da L_da, where L^m = sum over the per-item terms t (cls, quad,
skp, kd) of a_t L_t^m (`losses.split_by_modality`), and w^m are BKD's gradient-weighted modality
weights computed from the gradients of L^sk and L^ph with respect to the embeddings (or 1 and 1
when `modality_weighting` is off). Reconstruction (METHOD.md item 6 leaves it open): one pair
of weights balances the *sum* of the per-item terms rather than one pair per term; distribution
alignment, a per-class term, is not split.

`config` is the `loss` block of an experiment config (see `experiments/configs/common.py`): each
term has a `weight` (0 disables it and skips its computation) and its own hyperparameters.

`make` turns a loss configuration into the `Objective` that the training engine differentiates:
`kind` 'retrieval' is the above for a `retrieval.RetrievalModel`; 'classification' is softmax
cross-entropy of a backbone's classifier (backbone pretraining). Both run the network in
training mode with the step's random key as its 'dropout' stream (EfficientNet-Lite's
drop-connect and dropout; a ResNet ignores it), so every family trains through the same code.
"""
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from zsbir_jax.method import losses
from zsbir_jax.models import backbones
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


class Objective(NamedTuple):
  """A loss configuration made concrete for a model: what one training step differentiates.

  Attributes:
    targets: (frozen, teacher, images) -> {name: array}, the step's constants (no gradient
      flows into them); `frozen` and `teacher` are the train state's (see `train_state`).
    loss: (params, batch_stats, batch, targets, rng) -> (loss, (metrics, new batch_stats)), in
      training mode with `rng` as the 'dropout' stream; differentiated with respect to params.
    ema_momentum: the momentum of the EMA teacher the loss reads, None when it reads none.
  """
  targets: Callable[[Any, Any, Array], dict[str, Array]]
  loss: Callable[[Any, Any, Mapping[str, Array], Mapping[str, Array], Array],
                 tuple[Array, tuple[dict[str, Array], Any]]]
  ema_momentum: float | None


def make(model: Any, config: Any,
         imagenet_teacher: backbones.Backbone | None = None) -> Objective:
  """The objective of the loss configuration `config` (its `kind`) for `model`.

  Args:
    model: a `retrieval.RetrievalModel` ('retrieval') or a backbone with a classifier
      ('classification').
    config: the `loss` block of an experiment config.
    imagenet_teacher: the frozen pretrained backbone (with `fc`) for SAKE's online targets; its
      variables are `frozen['imagenet_teacher']`.
  """
  if config.kind == "classification":
    return classification(model)
  if config.kind == "retrieval":
    return retrieval_objective(model, config, imagenet_teacher)
  raise ValueError(f"unknown loss kind {config.kind!r}; choose 'retrieval' or 'classification'")


def classification(model: backbones.Backbone) -> Objective:
  """Mean softmax cross-entropy of `model`'s logits for batch 'image' and 'label' (B,) int32.

  metrics: 'loss' and 'accuracy' (top-1 of the batch, before the update).
  """
  def loss(params, batch_stats, batch, targets, rng):
    del targets  # A classifier learns from its labels alone.
    (_, logits), updates = model.apply({"params": params, "batch_stats": batch_stats},
                                       batch["image"], train=True, with_logits=True,
                                       mutable=["batch_stats"], rngs={"dropout": rng})
    value = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return value, ({"loss": value, "accuracy": accuracy}, updates["batch_stats"])

  return Objective(targets=lambda frozen, teacher, images: {}, loss=loss, ema_momentum=None)


def retrieval_objective(model: retrieval.RetrievalModel, config: Any,
                        imagenet_teacher: backbones.Backbone | None = None) -> Objective:
  """`total_loss` of a recipe for the retrieval model (student and EMA teacher share it).

  The batch holds 'image' (B, H, W, 3) float32, 'label', 'domain' and 'partner' (B,) int32.
  """
  use_ema_teacher = bool(config.kd.weight)
  online_skp = bool(config.skp.weight) and config.skp.targets == "online"

  def targets(frozen, teacher, images):
    step_targets = {}
    if "class_targets" in frozen:
      step_targets["class_targets"] = frozen["class_targets"]
    if online_skp:
      _, logits = imagenet_teacher.apply(frozen["imagenet_teacher"], images, with_logits=True)
      step_targets["teacher_class_logits"] = jax.lax.stop_gradient(logits)
    if use_ema_teacher:
      _, seen_logits, _ = model.apply(teacher, images)
      step_targets["ema_seen_logits"] = jax.lax.stop_gradient(seen_logits)
    return step_targets

  def loss(params, batch_stats, batch, step_targets, rng):
    e, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch["image"],
                             train=True, method=model.encode, mutable=["batch_stats"],
                             rngs={"dropout": rng})
    heads = lambda e: model.apply({"params": params}, e, method=model.heads)
    value, metrics = total_loss(e, heads, batch, step_targets, config)
    return value, (metrics, updates["batch_stats"])

  return Objective(targets=targets, loss=loss,
                   ema_momentum=config.ema_momentum if use_ema_teacher else None)
