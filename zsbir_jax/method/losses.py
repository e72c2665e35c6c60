"""The training losses of EFF and BKD (docs/METHOD.md, "Losses"), each a pure function over arrays.

Per-item losses return `(per_item, valid)`: `per_item` (B,) is the item's loss (0 where invalid)
and `valid` (B,) bool says whether the item takes part in the loss. `split_by_modality` reduces
such a pair to the sketch and photo parts that the gradient-weighted modality perception
(`modality_grad_norms`, `modality_weights`) balances. Masks replace boolean indexing, so every
function jits with static shapes. Inputs are computed in at least float32 (bfloat16 logits and
embeddings are upcast). Teacher outputs and targets are constants: they pass `stop_gradient`.

Domains are `SKETCH` (0) and `PHOTO` (1). Beyond the papers' abstracts these definitions are a
reconstruction (METHOD.md); the reconstruction choices of this module are named in each docstring.
"""
from typing import Literal

import jax
import jax.numpy as jnp

from zsbir_jax.domains import PHOTO, SKETCH

Array = jax.Array


def _at_least_f32(x: Array) -> Array:
  """x upcast to float32 if it is of a lower precision (bfloat16 compute), else unchanged."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _safe_log(p: Array) -> Array:
  """log p with p clipped to the smallest normal number, so that p = 0 gives a finite value."""
  return jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))


def _kl(p: Array, log_q: Array) -> Array:
  """KL(p || q) = sum_k p_k (log p_k - log q_k) over the last axis; entries with p_k = 0 add 0."""
  return jnp.sum(jnp.where(p > 0, p * (_safe_log(p) - log_q), 0.0), axis=-1)


def _pairwise_distances(z: Array) -> Array:
  """Euclidean distances (B, B) between the rows of z (B, D), from explicit differences.

  Differences (not the Gram expansion) make coincident rows exactly 0 apart; the double `where`
  gives sqrt a zero (finite) gradient there, where the plain sqrt's would be NaN. The (B, B, D)
  differences are small next to the backbone's activations.
  """
  sq = jnp.sum(jnp.square(z[:, None, :] - z[None, :, :]), axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def quadruplet_loss(
    z: Array,
    labels: Array,
    domains: Array,
    *,
    margin: float = 0.2,
    mining: Literal["hard", "all"] = "hard",
) -> tuple[Array, Array]:
  """EFF's domain-aware quadruplet loss (METHOD.md, loss 1) per anchor.

  For anchor i: positives P_i (same class, other domain), same-domain negatives N_i^s and
  cross-domain negatives N_i^o (other class). `mining="hard"`:
  L_i = ([margin + max_P D - min_{N^s} D]_+ + [margin + max_P D - min_{N^o} D]_+) / 2.
  `mining="all"`: each of the two hinges is averaged over every (p, n) pair of its kind before
  the halving (reconstruction: METHOD.md does not say how the two kinds are weighted; equal
  weight keeps "hard" and "all" on the same scale). Uses O(B^3) memory for the pairs.

  Args:
    z: (B, D) L2-normalised embeddings.
    labels: (B,) int class labels.
    domains: (B,) int, SKETCH or PHOTO.
    margin: hinge margin.
    mining: "hard" (batch-hard) or "all" (all combinations).

  Returns:
    per_item (B,) and valid (B,): an anchor is valid iff its three sets are non-empty; invalid
    anchors have loss 0 and no gradient.
  """
  dist = _pairwise_distances(_at_least_f32(z))
  same_class = labels[:, None] == labels[None, :]
  same_domain = domains[:, None] == domains[None, :]
  pos = same_class & ~same_domain
  neg_same = ~same_class & same_domain
  neg_other = ~same_class & ~same_domain
  valid = pos.any(axis=1) & neg_same.any(axis=1) & neg_other.any(axis=1)

  if mining == "hard":
    d_pos = jnp.max(jnp.where(pos, dist, -jnp.inf), axis=1)

    def hinge(neg):
      d_neg = jnp.min(jnp.where(neg, dist, jnp.inf), axis=1)
      return jax.nn.relu(margin + d_pos - d_neg)

  elif mining == "all":
    pair_hinge = jax.nn.relu(margin + dist[:, :, None] - dist[:, None, :])  # (anchor, p, n)

    def hinge(neg):
      pairs = pos[:, :, None] & neg[:, None, :]
      total = jnp.sum(jnp.where(pairs, pair_hinge, 0.0), axis=(1, 2))
      return total / jnp.maximum(jnp.sum(pairs, axis=(1, 2)), 1)

  else:
    raise ValueError(f"quadruplet_loss: mining must be 'hard' or 'all', got {mining!r}")
  per_item = (hinge(neg_same) + hinge(neg_other)) / 2
  return jnp.where(valid, per_item, 0.0), valid


def classification_loss(
    logits: Array, labels: Array, *, label_smoothing: float = 0.0
) -> tuple[Array, Array]:
  """Softmax cross-entropy of the seen-class logits (METHOD.md, loss 2), per item.

  Args:
    logits: (B, C) seen-class logits g(e).
    labels: (B,) int labels in [0, C).
    label_smoothing: s; the target is (1 - s) one_hot + s / C.

  Returns:
    per_item (B,) and valid (B,), all True (every sketch and photo counts).
  """
  log_probs = jax.nn.log_softmax(_at_least_f32(logits))
  num_classes = logits.shape[-1]
  targets = (1 - label_smoothing) * jax.nn.one_hot(labels, num_classes, dtype=log_probs.dtype)
  targets += label_smoothing / num_classes
  per_item = -jnp.sum(targets * log_probs, axis=-1)
  return per_item, jnp.ones(per_item.shape, bool)


def _distillation(logits: Array, targets: Array, temperature: float) -> Array:
  """T^2 KL(targets || softmax(logits / T)) per item, for (B, K) logits and target probabilities."""
  log_q = jax.nn.log_softmax(_at_least_f32(logits) / temperature)
  return temperature**2 * _kl(jax.lax.stop_gradient(_at_least_f32(targets)), log_q)


def knowledge_preservation_loss(
    logits: Array, labels: Array, table: Array, *, temperature: float = 1.0
) -> tuple[Array, Array]:
  """EFF's semantic knowledge preservation with class-wise targets (METHOD.md, loss 3), per item.

  L_i = T^2 KL(t_{y_i} || softmax(h(e_i) / T)), over sketches and photos alike.

  Args:
    logits: (B, K) teacher-class logits h(e) (K = 1000 for ImageNet).
    labels: (B,) int seen-class labels in [0, C).
    table: (C, K) class-wise teacher probabilities t_c, prepared before training.
    temperature: T.

  Returns:
    per_item (B,) and valid (B,), all True.
  """
  per_item = _distillation(logits, jnp.asarray(table)[labels], temperature)
  return per_item, jnp.ones(per_item.shape, bool)


def online_knowledge_preservation_loss(
    logits: Array, teacher_logits: Array, domains: Array, *, temperature: float = 1.0
) -> tuple[Array, Array]:
  """SAKE's knowledge preservation with per-photo targets from a frozen teacher, per item.

  The `targets = "online"` option of METHOD.md, loss 3 (the `sake` baseline):
  L_i = T^2 KL(softmax(teacher_logits_i / T) || softmax(h(e_i) / T)) for photos; sketches are
  invalid.

  Args:
    logits: (B, K) teacher-class logits h(e) of the student.
    teacher_logits: (B, K) the frozen teacher's logits on the same images, computed in the step.
    domains: (B,) int, SKETCH or PHOTO.
    temperature: T.

  Returns:
    per_item (B,) (0 for sketches) and valid (B,) = domains == PHOTO.
  """
  targets = jax.nn.softmax(_at_least_f32(teacher_logits) / temperature)
  valid = domains == PHOTO
  return jnp.where(valid, _distillation(logits, targets, temperature), 0.0), valid


def cross_modal_kd_loss(
    student_logits: Array, teacher_logits: Array, partner: Array, *, tau: float = 4.0
) -> tuple[Array, Array]:
  """BKD's cross-modal bidirectional KD against the EMA teacher (METHOD.md, loss 5), per item.

  L_i = tau^2 [KL(softmax(gT_i / tau) || softmax(g_i / tau))
               + KL(softmax(gT_pi(i) / tau) || softmax(g_i / tau))] / 2.

  Args:
    student_logits: (B, C) student seen-class logits g(e).
    teacher_logits: (B, C) EMA-teacher seen-class logits g_T(x) on the same images.
    partner: (B,) int index pi(i) in the batch of i's partner in the other domain, -1 for none.
    tau: temperature.

  Returns:
    per_item (B,) and valid (B,) = partner >= 0; items without a partner have loss 0.
  """
  valid = partner >= 0
  teacher_probs = jax.nn.softmax(_at_least_f32(jax.lax.stop_gradient(teacher_logits)) / tau)
  partner_probs = teacher_probs[jnp.where(valid, partner, 0)]
  log_q = jax.nn.log_softmax(_at_least_f32(student_logits) / tau)
  per_item = tau**2 * (_kl(teacher_probs, log_q) + _kl(partner_probs, log_q)) / 2
  return jnp.where(valid, per_item, 0.0), valid


def distribution_alignment_loss(logits: Array, labels: Array, domains: Array) -> Array:
  """BKD's distribution alignment (METHOD.md, loss 7), a scalar over classes.

  For each class c with sketches and photos in the batch, p_c^m is the mean of softmax(logits)
  over its items of domain m; the loss is the mean over such classes of
  (KL(p_c^sk || p_c^ph) + KL(p_c^ph || p_c^sk)) / 2, and 0 if there is none.

  Args:
    logits: (B, C) seen-class logits g(e); the classes are its last axis.
    labels: (B,) int labels in [0, C).
    domains: (B,) int, SKETCH or PHOTO.

  Returns:
    The scalar loss.
  """
  probs = jax.nn.softmax(_at_least_f32(logits))
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=probs.dtype)  # (B, C)

  def class_means(domain):
    members = one_hot * (domains == domain)[:, None]  # (B, C)
    counts = jnp.sum(members, axis=0)  # (C,)
    return members.T @ probs / jnp.maximum(counts, 1)[:, None], counts > 0  # (C, C), (C,)

  p_sk, has_sk = class_means(SKETCH)
  p_ph, has_ph = class_means(PHOTO)
  both = has_sk & has_ph
  sym_kl = (_kl(p_sk, _safe_log(p_ph)) + _kl(p_ph, _safe_log(p_sk))) / 2
  return jnp.sum(jnp.where(both, sym_kl, 0.0)) / jnp.maximum(jnp.sum(both), 1)


def split_by_modality(per_item: Array, valid: Array, domains: Array) -> tuple[Array, Array]:
  """The sketch and photo parts (L^sk, L^ph) of a per-item loss (METHOD.md, item 6).

  L^m = sum of per_item over valid items of domain m / number of valid items overall
  (reconstruction: this normalisation makes L^sk + L^ph the loss's plain mean over valid items,
  so that weights w^sk = w^ph = 1 recover the unweighted loss). Both are 0 if nothing is valid.

  Args:
    per_item: (B,) per-item losses.
    valid: (B,) bool, which items take part.
    domains: (B,) int, SKETCH or PHOTO.

  Returns:
    Scalars (L^sk, L^ph).
  """
  per_item = jnp.where(valid, per_item, 0.0)
  count = jnp.maximum(jnp.sum(valid), 1)
  return (jnp.sum(jnp.where(domains == SKETCH, per_item, 0.0)) / count,
          jnp.sum(jnp.where(domains == PHOTO, per_item, 0.0)) / count)


def modality_grad_norms(
    grad_sketch: Array, grad_photo: Array, domains: Array
) -> tuple[Array, Array]:
  """G^sk and G^ph of the gradient-weighted modality perception (METHOD.md, item 6).

  G^m = mean over items i of domain m of ||dL^m / de_i||, under stop_gradient. If the batch has
  no item of a domain, its G is set to the other domain's, so that both weights become 1
  (reconstruction: with one modality there is nothing to balance; the literal formula would give
  the absent domain's G = 0, halving the present one's weight).

  Args:
    grad_sketch: (B, D) gradient of L^sk with respect to the embeddings e.
    grad_photo: (B, D) gradient of L^ph with respect to the embeddings e.
    domains: (B,) int, SKETCH or PHOTO.

  Returns:
    Scalars (G^sk, G^ph).
  """
  def mean_norm(grad, domain):
    in_domain = domains == domain
    norms = jnp.linalg.norm(_at_least_f32(jax.lax.stop_gradient(grad)), axis=-1)
    count = jnp.sum(in_domain)
    return jnp.sum(jnp.where(in_domain, norms, 0.0)) / jnp.maximum(count, 1), count > 0

  g_sk, has_sk = mean_norm(grad_sketch, SKETCH)
  g_ph, has_ph = mean_norm(grad_photo, PHOTO)
  return jnp.where(has_sk, g_sk, g_ph), jnp.where(has_ph, g_ph, g_sk)


def modality_weights(
    grad_norm_sketch: Array, grad_norm_photo: Array, eps: float
) -> tuple[Array, Array]:
  """Modality weights w^m = (G^sk + G^ph) / (2 max(G^m, eps)) (METHOD.md, item 6).

  The modality whose loss has the weaker gradient gets the larger weight; equal G gives 1 and 1.

  Args:
    grad_norm_sketch: G^sk, scalar.
    grad_norm_photo: G^ph, scalar.
    eps: floor of the denominator.

  Returns:
    Scalars (w^sk, w^ph), constants for differentiation (stop_gradient).
  """
  g_sk, g_ph = jax.lax.stop_gradient((grad_norm_sketch, grad_norm_photo))
  total = g_sk + g_ph
  return total / (2 * jnp.maximum(g_sk, eps)), total / (2 * jnp.maximum(g_ph, eps))
