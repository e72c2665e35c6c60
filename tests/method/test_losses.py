"""Tests of zsbir_jax.method.losses against plain-NumPy per-item loops and hand-worked batches."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zsbir_jax.domains import PHOTO, SKETCH
from zsbir_jax.method import losses

# The losses under test, jitted once per shape (eager op-by-op dispatch is slower on CPU);
# test_everything_jits_with_the_same_values compares them with the eager functions.
quadruplet_loss = jax.jit(losses.quadruplet_loss, static_argnames=("margin", "mining"))
classification_loss = jax.jit(losses.classification_loss, static_argnames="label_smoothing")
knowledge_preservation_loss = jax.jit(losses.knowledge_preservation_loss,
                                      static_argnames="temperature")
online_knowledge_preservation_loss = jax.jit(losses.online_knowledge_preservation_loss,
                                             static_argnames="temperature")
cross_modal_kd_loss = jax.jit(losses.cross_modal_kd_loss, static_argnames="tau")
distribution_alignment_loss = jax.jit(losses.distribution_alignment_loss)
split_by_modality = jax.jit(losses.split_by_modality)
modality_grad_norms = jax.jit(losses.modality_grad_norms)
modality_weights = jax.jit(losses.modality_weights, static_argnames="eps")

# ---------------------------------------------------------------- NumPy references (float64 loops)


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_kl(p, q):
  return sum(pk * (np.log(pk) - np.log(qk)) for pk, qk in zip(p, q) if pk > 0)


def np_quadruplet(z, labels, domains, margin, mining):
  n = len(z)
  out, valid = np.zeros(n), np.zeros(n, bool)
  for i in range(n):
    d = lambda j: np.linalg.norm(z[i] - z[j])
    pos = [j for j in range(n) if labels[j] == labels[i] and domains[j] != domains[i]]
    n_s = [j for j in range(n) if labels[j] != labels[i] and domains[j] == domains[i]]
    n_o = [j for j in range(n) if labels[j] != labels[i] and domains[j] != domains[i]]
    if not (pos and n_s and n_o):
      continue
    valid[i] = True
    hinges = []
    for negs in (n_s, n_o):
      if mining == "hard":
        hinges.append(max(0.0, margin + max(map(d, pos)) - min(map(d, negs))))
      else:
        hinges.append(np.mean([max(0.0, margin + d(p) - d(q)) for p in pos for q in negs]))
    out[i] = sum(hinges) / 2
  return out, valid


def np_cross_entropy(logits, labels, smoothing):
  out = []
  for row, y in zip(logits, labels):
    log_p = np.log(np_softmax(row))
    target = np.full(len(row), smoothing / len(row))
    target[y] += 1 - smoothing
    out.append(-np.dot(target, log_p))
  return np.array(out)


def np_distillation(logits, targets, temperature):
  return np.array([temperature**2 * np_kl(t, np_softmax(h / temperature))
                   for h, t in zip(logits, targets)])


def np_cross_modal_kd(student, teacher, partner, tau):
  out = np.zeros(len(student))
  for i, j in enumerate(partner):
    if j >= 0:
      q = np_softmax(student[i] / tau)
      out[i] = tau**2 * (np_kl(np_softmax(teacher[i] / tau), q)
                         + np_kl(np_softmax(teacher[j] / tau), q)) / 2
  return out, partner >= 0


def np_distribution_alignment(logits, labels, domains):
  terms = []
  for c in range(logits.shape[1]):
    sk = [np_softmax(logits[i]) for i in range(len(labels))
          if labels[i] == c and domains[i] == SKETCH]
    ph = [np_softmax(logits[i]) for i in range(len(labels))
          if labels[i] == c and domains[i] == PHOTO]
    if sk and ph:
      p, q = np.mean(sk, 0), np.mean(ph, 0)
      terms.append((np_kl(p, q) + np_kl(q, p)) / 2)
  return np.mean(terms) if terms else 0.0


def random_batch(seed, size=12, num_classes=4, dim=6):
  """Random L2-normalised embeddings, labels and domains (not class-balanced)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(size, dim))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  return z, rng.integers(0, num_classes, size), rng.integers(0, 2, size)


def unit_circle(degrees):
  rad = np.deg2rad(np.asarray(degrees, float))
  return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def assert_finite(tree):
  for leaf in jax.tree.leaves(tree):
    assert np.all(np.isfinite(leaf))


x64 = functools.partial(jax.enable_x64, True)

# Class 0: a sketch and a photo; class 1: a sketch and a photo.
LABELS4, DOMAINS4 = np.array([0, 0, 1, 1]), np.array([SKETCH, PHOTO, SKETCH, PHOTO])

# ----------------------------------------------------------------------------- quadruplet loss


@pytest.mark.parametrize("mining", ["hard", "all"])
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_quadruplet_matches_numpy_x64(seed, mining):
  z, labels, domains = random_batch(seed)
  want, want_valid = np_quadruplet(z, labels, domains, 0.3, mining)
  assert 0 < want_valid.sum() < len(z)  # the seeds give valid and invalid anchors
  with x64():
    got, valid = quadruplet_loss(z, labels, domains, margin=0.3, mining=mining)
  np.testing.assert_array_equal(valid, want_valid)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_matches_numpy_float32(mining):
  z, labels, domains = random_batch(3, size=16)
  want, _ = np_quadruplet(z, labels, domains, 0.2, mining)
  got, _ = quadruplet_loss(jnp.float32(z), labels, domains, mining=mining)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_every_hinge_active(mining):
  # Each item's positive is opposite it on the circle (distance 2), its negatives at 90 degrees.
  z = unit_circle([0, 180, 90, -90])
  with x64():
    got, valid = quadruplet_loss(z, LABELS4, DOMAINS4, margin=0.2, mining=mining)
  assert valid.all()
  np.testing.assert_allclose(got, np.full(4, 0.2 + 2 - np.sqrt(2)), rtol=1e-12)


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_no_hinge_active_identical_positives(mining):
  # Positives coincide (distance 0, the sqrt's singular point); negatives are 2 away.
  z = jnp.float32(unit_circle([0, 0, 180, 180]))
  loss = lambda z: quadruplet_loss(z, LABELS4, DOMAINS4, mining=mining)
  got, valid = loss(z)
  assert valid.all()
  np.testing.assert_array_equal(got, np.zeros(4))
  grad = jax.grad(lambda z: loss(z)[0].sum())(z)
  np.testing.assert_array_equal(grad, np.zeros_like(z))


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_all_items_identical_gradient_finite(mining):
  # Every distance is 0: every hinge equals the margin and every sqrt is at 0.
  z = jnp.float32(unit_circle([30, 30, 30, 30]))
  loss = lambda z: quadruplet_loss(z, LABELS4, DOMAINS4, margin=0.2, mining=mining)
  np.testing.assert_allclose(loss(z)[0], np.full(4, 0.2), rtol=1e-6)
  assert_finite(jax.grad(lambda z: loss(z)[0].sum())(z))


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_class_with_one_domain(mining):
  # Class 2 has only a sketch: it has no positive (invalid) but is a negative of the others.
  z = unit_circle([0, 180, 90, -90, 45])
  labels = np.append(LABELS4, 2)
  domains = np.append(DOMAINS4, SKETCH)
  want, want_valid = np_quadruplet(z, labels, domains, 0.2, mining)
  np.testing.assert_array_equal(want_valid, [True, True, True, True, False])
  with x64():
    got, valid = quadruplet_loss(z, labels, domains, mining=mining)
    grad = jax.grad(lambda z: quadruplet_loss(z, labels, domains, mining=mining)[0].sum())(z)
  np.testing.assert_array_equal(valid, want_valid)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  assert np.asarray(got)[4] == 0
  assert_finite(grad)


@pytest.mark.parametrize("mining", ["hard", "all"])
@pytest.mark.parametrize("labels, domains", [
    (np.zeros(6, int), np.array([0, 1, 0, 1, 0, 1])),  # one class: no negatives at all
    (np.array([0, 1, 2, 0, 1, 2]), np.zeros(6, int)),  # sketches only: no positives
    (np.array([0, 0, 1, 2, 1, 2]), np.array([0, 1, 0, 0, 0, 0])),  # no cross-domain negative
])
def test_quadruplet_no_valid_anchor(labels, domains, mining):
  z, _, _ = random_batch(4, size=6)
  z = jnp.float32(z)
  got, valid = quadruplet_loss(z, labels, domains, mining=mining)
  assert not valid.any()
  np.testing.assert_array_equal(got, np.zeros(6))
  grad = jax.grad(lambda z: quadruplet_loss(z, labels, domains, mining=mining)[0].sum())(z)
  np.testing.assert_array_equal(grad, np.zeros_like(z))
  np.testing.assert_array_equal(split_by_modality(got, valid, domains), (0.0, 0.0))


def test_quadruplet_rejects_unknown_mining():
  z, labels, domains = random_batch(0)
  with pytest.raises(ValueError, match="semi"):
    quadruplet_loss(z, labels, domains, mining="semi")


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_quadruplet_gradient_matches_finite_differences(mining):
  z, labels, domains = random_batch(5, size=10)
  with x64():
    loss = lambda z: quadruplet_loss(z, labels, domains, mining=mining)[0].sum()
    grad = np.asarray(jax.grad(loss)(z))
    step = 1e-6
    for i, k in [(0, 0), (3, 2), (7, 5)]:
      dz = np.zeros_like(z)
      dz[i, k] = step
      numeric = (loss(z + dz) - loss(z - dz)) / (2 * step)
      np.testing.assert_allclose(grad[i, k], numeric, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------ classification loss


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_classification_matches_numpy(smoothing):
  rng = np.random.default_rng(6)
  logits, labels = rng.normal(size=(9, 5)) * 3, rng.integers(0, 5, 9)
  want = np_cross_entropy(logits, labels, smoothing)
  with x64():
    got, valid = classification_loss(logits, labels, label_smoothing=smoothing)
  assert valid.all()
  np.testing.assert_allclose(got, want, rtol=1e-12)
  got32, _ = classification_loss(jnp.float32(logits), labels, label_smoothing=smoothing)
  np.testing.assert_allclose(got32, want, rtol=1e-5)


def test_classification_hand_worked():
  # Uniform logits over 4 classes: -log(1/4) with or without smoothing.
  got, _ = classification_loss(jnp.zeros((2, 4)), np.array([1, 3]), label_smoothing=0.2)
  np.testing.assert_allclose(got, np.full(2, np.log(4)), rtol=1e-6)


def test_classification_bfloat16_is_computed_in_float32():
  logits = jnp.asarray(np.random.default_rng(7).normal(size=(4, 3)), jnp.bfloat16)
  got, _ = classification_loss(logits, np.array([0, 1, 2, 0]))
  want = np_cross_entropy(np.asarray(logits, np.float64), [0, 1, 2, 0], 0.0)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5)


# ------------------------------------------------------------- semantic knowledge preservation


def sparse_table(rng, num_classes, width):
  """Class-wise targets with exact zeros (t = 0 entries must add 0 to the KL)."""
  table = rng.dirichlet(np.ones(width), size=num_classes)
  table[:, ::3] = 0
  return table / table.sum(1, keepdims=True)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_knowledge_preservation_matches_numpy(temperature):
  rng = np.random.default_rng(8)
  table = sparse_table(rng, 4, 7)
  logits, labels = rng.normal(size=(10, 7)) * 2, rng.integers(0, 4, 10)
  want = np_distillation(logits, table[labels], temperature)
  with x64():
    loss = lambda h: knowledge_preservation_loss(h, labels, table, temperature=temperature)
    got, valid = loss(logits)
    grad = jax.grad(lambda h: loss(h)[0].sum())(logits)
  assert valid.all()
  np.testing.assert_allclose(got, want, rtol=1e-10)
  assert_finite(grad)


def test_knowledge_preservation_with_a_numpy_table_closed_over_by_jit():
  # The trainer reads the table from disk as NumPy and closes over it in the jitted step.
  rng = np.random.default_rng(20)
  table = sparse_table(rng, 3, 4).astype(np.float32)
  logits, labels = jnp.float32(rng.normal(size=(5, 4))), jnp.int32(rng.integers(0, 3, 5))
  got, _ = jax.jit(lambda h, y: losses.knowledge_preservation_loss(h, y, table))(logits, labels)
  np.testing.assert_allclose(got, np_distillation(np.float64(logits), table[labels], 1.0),
                             rtol=1e-5, atol=1e-7)


def test_knowledge_preservation_zero_when_prediction_equals_target():
  table = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]])
  # Logits whose tempered softmax is exactly the target where it is positive (and ~0 elsewhere).
  logits = 2.0 * np.log(np.maximum(table, 1e-30))
  with x64():
    got, _ = knowledge_preservation_loss(logits, np.array([0, 1]), table, temperature=2.0)
  np.testing.assert_allclose(got, [0.0, 0.0], atol=1e-12)


def test_online_knowledge_preservation_photos_only():
  rng = np.random.default_rng(9)
  logits, teacher = rng.normal(size=(8, 6)), rng.normal(size=(8, 6)) * 3
  domains = np.array([0, 1, 1, 0, 1, 0, 0, 1])
  want = np_distillation(logits, [np_softmax(t / 2.0) for t in teacher], 2.0)
  want[domains == SKETCH] = 0
  with x64():
    loss = lambda h, t: online_knowledge_preservation_loss(h, t, domains, temperature=2.0)
    got, valid = loss(logits, teacher)
    grad_h, grad_t = jax.grad(lambda h, t: loss(h, t)[0].sum(), argnums=(0, 1))(logits, teacher)
  np.testing.assert_array_equal(valid, domains == PHOTO)
  np.testing.assert_allclose(got, want, rtol=1e-10)
  np.testing.assert_array_equal(grad_h[domains == SKETCH], 0)  # sketches contribute nothing
  np.testing.assert_array_equal(grad_t, 0)  # the teacher is frozen


# ------------------------------------------------------------------------ cross-modal KD loss


def test_cross_modal_kd_matches_numpy():
  rng = np.random.default_rng(10)
  student, teacher = rng.normal(size=(8, 5)) * 2, rng.normal(size=(8, 5)) * 2
  partner = np.array([4, 5, 6, -1, 0, 1, 2, -1])
  want, want_valid = np_cross_modal_kd(student, teacher, partner, 4.0)
  with x64():
    loss = lambda s, t: cross_modal_kd_loss(s, t, partner, tau=4.0)
    got, valid = loss(student, teacher)
    grad_s, grad_t = jax.grad(lambda s, t: loss(s, t)[0].sum(), argnums=(0, 1))(student, teacher)
  np.testing.assert_array_equal(valid, want_valid)
  np.testing.assert_allclose(got, want, rtol=1e-10)
  np.testing.assert_array_equal(np.asarray(got)[[3, 7]], 0)
  np.testing.assert_array_equal(np.asarray(grad_s)[[3, 7]], 0)  # no partner: no contribution
  np.testing.assert_array_equal(grad_t, 0)  # the EMA teacher is under stop_gradient
  assert_finite(grad_s)


def test_cross_modal_kd_hand_worked():
  # Student equal to the teacher: the first KL is 0, the second is the partners' KL.
  teacher = np.array([[1.0, 0.0], [0.0, 1.0]])
  got, _ = cross_modal_kd_loss(jnp.float32(teacher), jnp.float32(teacher), np.array([1, 0]),
                               tau=1.0)
  p, q = np_softmax(teacher[0]), np_softmax(teacher[1])
  np.testing.assert_allclose(got, [np_kl(q, p) / 2, np_kl(p, q) / 2], rtol=1e-5)


def test_cross_modal_kd_saturated_teacher_is_finite():
  # A teacher so confident that its tempered softmax underflows to exact zeros.
  teacher = jnp.float32([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
  student = jnp.float32([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
  loss = lambda s: cross_modal_kd_loss(s, teacher, np.array([1, 0]), tau=1.0)[0].sum()
  assert np.isfinite(loss(student))
  assert_finite(jax.grad(loss)(student))


# ------------------------------------------------------------------- distribution alignment


@pytest.mark.parametrize("seed", [11, 12])
def test_distribution_alignment_matches_numpy(seed):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(14, 5)) * 2
  labels, domains = rng.integers(0, 5, 14), rng.integers(0, 2, 14)
  with x64():
    got = distribution_alignment_loss(logits, labels, domains)
  np.testing.assert_allclose(got, np_distribution_alignment(logits, labels, domains), rtol=1e-10)


def test_distribution_alignment_hand_worked():
  # Class 0: sketch softmax (1/3, 1/3, 1/3), photo softmax (1/2, 1/4, 1/4); class 1 has a sketch
  # only and class 2 a photo only, so neither counts.
  logits = np.array([[0.0, 0.0, 0.0], [np.log(2.0), 0.0, 0.0], [5.0, 1.0, 0.0], [1.0, 2.0, 3.0]])
  labels, domains = np.array([0, 0, 1, 2]), np.array([SKETCH, PHOTO, SKETCH, PHOTO])
  kl_sk_ph = (np.log(2 / 3) + 2 * np.log(4 / 3)) / 3
  kl_ph_sk = np.log(3 / 2) / 2 + np.log(3 / 4) / 2
  with x64():
    got = distribution_alignment_loss(logits, labels, domains)
  np.testing.assert_allclose(got, (kl_sk_ph + kl_ph_sk) / 2, rtol=1e-12)


def test_distribution_alignment_no_class_in_both_domains():
  logits = jnp.float32(np.random.default_rng(13).normal(size=(4, 3)))
  labels, domains = np.array([0, 0, 1, 2]), np.array([SKETCH, SKETCH, PHOTO, PHOTO])
  loss = lambda x: distribution_alignment_loss(x, labels, domains)
  assert loss(logits) == 0
  np.testing.assert_array_equal(jax.grad(loss)(logits), 0)


def test_distribution_alignment_saturated_softmax_is_finite():
  # Softmax entries underflow to exact zeros in both domains (the log of 0 is clipped).
  logits = jnp.float32([[1e4, 0.0, 0.0], [0.0, 1e4, 0.0], [0.0, 0.0, 1e4], [1e4, 0.0, 0.0]])
  labels, domains = np.array([0, 0, 1, 1]), np.array([SKETCH, PHOTO, SKETCH, PHOTO])
  loss = lambda x: distribution_alignment_loss(x, labels, domains)
  assert np.isfinite(loss(logits)) and loss(logits) > 0
  assert_finite(jax.grad(loss)(logits))


def test_distribution_alignment_identical_distributions_is_zero():
  logits = np.random.default_rng(14).normal(size=(2, 4))
  logits = np.concatenate([logits, logits])
  got = distribution_alignment_loss(
      jnp.float32(logits), np.array([0, 1, 0, 1]), np.array([SKETCH, SKETCH, PHOTO, PHOTO]))
  np.testing.assert_allclose(got, 0.0, atol=1e-7)


# ---------------------------------------------------------- modality split and gradient weights


def test_split_by_modality_matches_numpy():
  rng = np.random.default_rng(15)
  per_item, valid, domains = rng.random(9), rng.random(9) > 0.3, rng.integers(0, 2, 9)
  per_item[~valid] = 1e6  # values of invalid items must be ignored
  with x64():
    l_sk, l_ph = split_by_modality(per_item, valid, domains)
  count = valid.sum()
  np.testing.assert_allclose(l_sk, per_item[valid & (domains == SKETCH)].sum() / count)
  np.testing.assert_allclose(l_ph, per_item[valid & (domains == PHOTO)].sum() / count)
  np.testing.assert_allclose(l_sk + l_ph, per_item[valid].mean())


def test_modality_grad_norms_matches_numpy():
  rng = np.random.default_rng(16)
  grad_sk, grad_ph = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
  domains = rng.integers(0, 2, 7)
  with x64():
    g_sk, g_ph = modality_grad_norms(grad_sk, grad_ph, domains)
  np.testing.assert_allclose(g_sk, np.linalg.norm(grad_sk[domains == SKETCH], axis=1).mean())
  np.testing.assert_allclose(g_ph, np.linalg.norm(grad_ph[domains == PHOTO], axis=1).mean())


def test_modality_weights_formula():
  w_sk, w_ph = modality_weights(jnp.float32(1.0), jnp.float32(3.0), 1e-8)
  np.testing.assert_allclose([w_sk, w_ph], [2.0, 2.0 / 3.0], rtol=1e-6)
  assert w_sk > 1 > w_ph  # the weaker-gradient modality (sketch) is up-weighted
  np.testing.assert_allclose(modality_weights(jnp.float32(0.7), jnp.float32(0.7), 1e-8),
                             [1.0, 1.0], rtol=1e-6)
  # A zero gradient norm is floored by eps (finite weight, no division by zero).
  w_sk, w_ph = modality_weights(jnp.float32(0.0), jnp.float32(1e-3), 1e-6)
  np.testing.assert_allclose([w_sk, w_ph], [500.0, 0.5], rtol=1e-6)
  assert_finite(modality_weights(jnp.float32(0.0), jnp.float32(0.0), 1e-6))


def test_modality_weights_one_domain_absent():
  grads = jnp.float32(np.random.default_rng(17).normal(size=(5, 4)))
  domains = np.full(5, PHOTO)
  g_sk, g_ph = modality_grad_norms(jnp.zeros_like(grads), grads, domains)
  np.testing.assert_allclose(g_sk, g_ph)
  np.testing.assert_allclose(modality_weights(g_sk, g_ph, 1e-8), [1.0, 1.0], rtol=1e-6)


def weighted_quadruplet(z, labels, domains):
  """The composition the train step uses: split, per-modality gradients, weights, weighted sum."""
  def parts(z):
    return split_by_modality(*quadruplet_loss(z, labels, domains), domains)

  (l_sk, l_ph), vjp = jax.vjp(parts, z)
  (grad_sk,), (grad_ph,) = vjp((1.0, 0.0)), vjp((0.0, 1.0))
  w_sk, w_ph = modality_weights(*modality_grad_norms(grad_sk, grad_ph, domains), 1e-8)
  return w_sk * l_sk + w_ph * l_ph, (w_sk, w_ph, l_sk, l_ph)


def test_weighted_composition_jits_and_is_finite():
  z, labels, domains = random_batch(18, size=16)
  z = jnp.float32(z)
  step = jax.jit(jax.value_and_grad(weighted_quadruplet, has_aux=True))
  (loss, (w_sk, w_ph, l_sk, l_ph)), grad = step(z, labels, domains)
  assert_finite((loss, w_sk, w_ph, grad))
  np.testing.assert_allclose(loss, w_sk * l_sk + w_ph * l_ph, rtol=1e-6)
  # The weights are constants: the gradient is the weighted sum of the parts' gradients.
  part = lambda k: jax.grad(lambda z: split_by_modality(
      *quadruplet_loss(z, labels, domains), domains)[k])(z)
  np.testing.assert_allclose(grad, w_sk * part(0) + w_ph * part(1), rtol=1e-5, atol=1e-7)
  # Weights of 1 would reproduce the plain mean over valid anchors.
  per_item, valid = quadruplet_loss(z, labels, domains)
  np.testing.assert_allclose(l_sk + l_ph, per_item[valid].mean(), rtol=1e-6)


# ----------------------------------------------------------------------------------------- jit


def test_everything_jits_with_the_same_values():
  rng = np.random.default_rng(19)
  z, labels, domains = random_batch(19, size=10, num_classes=3)
  z = jnp.float32(z)
  logits, teacher = jnp.float32(rng.normal(size=(10, 3))), jnp.float32(rng.normal(size=(10, 3)))
  table = jnp.float32(sparse_table(rng, 3, 3))
  partner = np.array([5, 6, 7, 8, 9, 0, 1, 2, 3, -1])
  calls = [
      (functools.partial(losses.quadruplet_loss, mining="hard"), (z, labels, domains)),
      (functools.partial(losses.quadruplet_loss, mining="all"), (z, labels, domains)),
      (functools.partial(losses.classification_loss, label_smoothing=0.1), (logits, labels)),
      (losses.knowledge_preservation_loss, (logits, labels, table)),
      (losses.online_knowledge_preservation_loss, (logits, teacher, domains)),
      (losses.cross_modal_kd_loss, (logits, teacher, partner)),
      (losses.distribution_alignment_loss, (logits, labels, domains)),
      (losses.split_by_modality, (logits[:, 0], labels > 0, domains)),
      (losses.modality_grad_norms, (z, -z, domains)),
      (functools.partial(losses.modality_weights, eps=1e-8), (z[0, 0] ** 2, z[1, 0] ** 2)),
  ]
  for fn, args in calls:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 jax.jit(fn)(*args), fn(*args))
