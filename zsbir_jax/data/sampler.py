"""Batch plans of source indices: class-balanced P x K (retrieval), uniform shuffling (pretraining).

`PKSampler` and `ShuffleSampler` share one interface, which `pipeline.train_dataset` reads:
`batch_size`, `steps_per_epoch`, `batch(step)` (the global batch's source indices) and
`partner` (positions of cross-modal partners, or None).

P x K: P classes per batch, each with K sketches and K photos.

Every sketch then has same-class photos (positives and a cross-modal partner) and other-class
items of both domains (negatives), as the quadruplet, KD and alignment losses need.

Batch layout (2PK positions): class slot p holds positions [2Kp, 2Kp + K) for its K sketches
and [2Kp + K, 2Kp + 2K) for its K photos; `partner[i]` pairs sketch k of a slot with photo k of
the same slot and vice versa. Slots hold P distinct classes in random order.

Epoch: one pass over the training photos. The photos of each class are cut into chunks of K
(a fresh permutation per epoch; the last chunk of a class is completed from a further
permutation), and every chunk fills one class slot of one batch, so

  steps_per_epoch = floor(sum_c ceil(n_c / K) / P),

computed after capping each class at steps_per_epoch chunks (a class cannot fill two slots of
one batch). Per epoch, fewer than P chunks drawn at random are left out, and the excess photos of
a class holding more than 1/P of all chunks are skipped. The K sketches of a slot are the next K
of the class's own stream of permutations. A class with fewer than K items of a domain therefore
repeats items (sampling with replacement once its items are exhausted); a class with photos but
no sketches, or sketches but no photos, is an error, as is a split with fewer than P classes.

Deterministic: the plan of epoch e depends only on (seed, e) and the counts, and every epoch
draws afresh.
"""
import functools

import numpy as np

from zsbir_jax.domains import PHOTO, SKETCH


def pk_layout(classes, k: int) -> dict[str, np.ndarray]:
  """'label', 'domain' and 'partner', (2PK,) int32 each, of a batch of P = len(classes) slots.

  The layout of the module docstring: slot p holds K sketches then K photos of classes[p], and
  sketch j of a slot partners photo j of the slot and vice versa.
  """
  position = np.arange(2 * len(classes) * k)
  slot, within = position // (2 * k), position % (2 * k)
  return {"label": np.asarray(classes, np.int32)[slot],
          "domain": np.where(within < k, SKETCH, PHOTO).astype(np.int32),
          "partner": (slot * 2 * k + (within + k) % (2 * k)).astype(np.int32)}


class PKSampler:
  """Plans class-balanced batches of source indices.

  Attributes:
    batch_size: 2 * P * K, the global batch size.
    steps_per_epoch: batches per epoch (see the module docstring).
    partner: (2PK,) int32, the batch position of each position's same-class partner in the
      other domain.
    num_classes: number of classes the sampler draws from.
  """

  def __init__(self, labels: np.ndarray, domains: np.ndarray, p: int, k: int, seed: int):
    """Validates the split and sizes the epoch.

    Args:
      labels: (N,) class label of every source item.
      domains: (N,) SKETCH or PHOTO of every source item.
      p: classes per batch.
      k: sketches and photos per class per batch.
      seed: sampling seed.

    Raises:
      ValueError: naming the problem, when P x K sampling is impossible.
    """
    labels = np.asarray(labels, dtype=np.int64)
    domains = np.asarray(domains, dtype=np.int64)
    if p < 1 or k < 1:
      raise ValueError(f"P x K sampling needs P >= 1 and K >= 1, got P={p}, K={k}")
    if labels.shape != domains.shape or labels.ndim != 1:
      raise ValueError(
          f"labels and domains must be equal-length vectors, got shapes {labels.shape} and "
          f"{domains.shape}")
    bad = ~np.isin(domains, (SKETCH, PHOTO))
    if bad.any():
      raise ValueError(
          f"domains must be {SKETCH} (sketch) or {PHOTO} (photo); item "
          f"{int(np.argmax(bad))} has {int(domains[bad][0])}")
    self._p, self._k, self._seed = p, k, seed
    self.batch_size = 2 * p * k
    classes = np.unique(labels)
    sketches = {int(c): np.flatnonzero((labels == c) & (domains == SKETCH)) for c in classes}
    photos = {int(c): np.flatnonzero((labels == c) & (domains == PHOTO)) for c in classes}
    one_sided = [int(c) for c in classes if len(sketches[int(c)]) == 0 or len(photos[int(c)]) == 0]
    if one_sided:
      raise ValueError(
          f"P x K sampling needs sketches and photos in every class; classes {one_sided[:10]} "
          f"have only one domain")
    if len(classes) < p:
      raise ValueError(
          f"P x K sampling needs at least P={p} classes, the split has {len(classes)}")
    self.num_classes = len(classes)
    self._classes = classes
    self._sketches = [sketches[int(c)] for c in classes]
    self._photos = [photos[int(c)] for c in classes]
    chunks = np.array([-(-len(ph) // k) for ph in self._photos])
    steps = int(chunks.sum()) // p
    while (chunks > steps).any():
      chunks = np.minimum(chunks, steps)
      steps = int(chunks.sum()) // p
    self._chunks = chunks
    self.steps_per_epoch = steps
    self.partner = pk_layout(range(p), k)["partner"]

  def __repr__(self) -> str:
    return (f"PKSampler(P={self._p}, K={self._k}, seed={self._seed}, "
            f"classes={self.num_classes}, steps_per_epoch={self.steps_per_epoch})")

  def batch(self, step: int) -> np.ndarray:
    """(2PK,) int64 source indices of global batch `step` (counting across epochs)."""
    return self.epoch(step // self.steps_per_epoch)[step % self.steps_per_epoch]

  @functools.lru_cache(maxsize=2)
  def epoch(self, epoch: int) -> np.ndarray:
    """(steps_per_epoch, 2PK) int64 source indices of every batch of `epoch`."""
    rng = np.random.default_rng((self._seed, 0, epoch))
    p, k, steps = self._p, self._k, self.steps_per_epoch
    # Leave out the chunks beyond steps * P, drawn uniformly.
    quota = self._chunks.copy()
    drop = rng.choice(int(quota.sum()), size=int(quota.sum()) - steps * p, replace=False)
    np.subtract.at(quota, np.searchsorted(np.cumsum(quota), drop, side="right"), 1)
    # Assign chunks to batches: a class with as many chunks left as batches left must be in
    # this batch; the other slots go to classes drawn in proportion to their chunks left. This
    # keeps every class at most one chunk per batch and always completes.
    slots = np.empty((steps, p), dtype=np.int64)
    left = quota.copy()
    for s in range(steps):
      forced = np.flatnonzero(left == steps - s)
      free = np.flatnonzero((left > 0) & (left < steps - s))
      picked = rng.choice(free, size=p - len(forced), replace=False,
                          p=left[free] / left[free].sum()) if p > len(forced) else free[:0]
      slots[s] = rng.permutation(np.concatenate([forced, picked]))
      left[slots[s]] -= 1
    # Fill every slot with the next K photos and K sketches of its class's streams.
    plan = np.empty((steps, p, 2, k), dtype=np.int64)
    for c in range(self.num_classes):
      where = np.nonzero(slots == c)
      if not len(where[0]):
        continue
      n = len(where[0]) * k
      plan[where[0], where[1], 0] = _stream(rng, self._sketches[c], n).reshape(-1, k)
      plan[where[0], where[1], 1] = _stream(rng, self._photos[c], n).reshape(-1, k)
    plan = plan.reshape(steps, 2 * p * k)
    plan.setflags(write=False)
    return plan


def _stream(rng: np.random.Generator, items: np.ndarray, n: int) -> np.ndarray:
  """The first n items of a concatenation of independent permutations of `items`."""
  reps = -(-n // len(items))
  return np.concatenate([rng.permutation(items) for _ in range(reps)])[:n]


class ShuffleSampler:
  """Uniformly shuffled batches: epoch e reads permutation default_rng((seed, 0, e)) of the items.

  Each epoch is cut into steps_per_epoch = floor(N / batch_size) global batches; the last
  partial batch is left out, a different one every epoch. For a single-domain set (the photo-only
  pretraining set), so no position has a partner.

  Attributes:
    batch_size: the global batch size.
    steps_per_epoch: full batches per epoch.
    partner: None (no cross-modal pairs).
  """
  partner = None

  def __init__(self, num_items: int, batch_size: int, seed: int):
    if num_items < batch_size:
      raise ValueError(f"batch size {batch_size} exceeds the {num_items} training photos")
    self.batch_size, self.steps_per_epoch = batch_size, num_items // batch_size
    self._num_items, self._seed = num_items, seed

  def __repr__(self) -> str:
    return (f"ShuffleSampler(items={self._num_items}, batch_size={self.batch_size}, "
            f"seed={self._seed}, steps_per_epoch={self.steps_per_epoch})")

  @functools.lru_cache(maxsize=2)
  def order(self, epoch: int) -> np.ndarray:
    """(N,) the permutation of the items that epoch `epoch` reads."""
    return np.random.default_rng((self._seed, 0, epoch)).permutation(self._num_items)

  def batch(self, step: int) -> np.ndarray:
    """(batch_size,) int64 source indices of global batch `step` (counting across epochs)."""
    epoch, batch = divmod(step, self.steps_per_epoch)
    return self.order(epoch)[batch * self.batch_size:(batch + 1) * self.batch_size]
