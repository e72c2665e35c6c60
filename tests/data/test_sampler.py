"""PKSampler: batch structure, partners, epoch length and coverage, determinism, errors."""
import collections

import numpy as np
import pytest

from zsbir_jax.data import sampler as sampler_lib
from zsbir_jax.domains import PHOTO, SKETCH


def _dataset(sketches: list[int], photos: list[int]) -> tuple[np.ndarray, np.ndarray]:
  """Labels and domains of a split with the given per-class counts, items interleaved."""
  items = [(c, SKETCH) for c, n in enumerate(sketches) for _ in range(n)]
  items += [(c, PHOTO) for c, n in enumerate(photos) for _ in range(n)]
  order = np.random.default_rng(0).permutation(len(items))
  labels, domains = zip(*[items[i] for i in order])
  return np.array(labels), np.array(domains)


def test_batches_hold_p_classes_of_k_sketches_and_k_photos_with_partners():
  labels, domains = _dataset([7, 3, 9, 4, 6, 12, 5], [8, 6, 11, 2, 7, 15, 5])
  p, k = 3, 2
  s = sampler_lib.PKSampler(labels, domains, p, k, seed=0)
  assert s.batch_size == 12
  assert (s.partner[s.partner] == np.arange(12)).all()
  for epoch in range(3):
    plan = s.epoch(epoch)
    assert plan.shape == (s.steps_per_epoch, 12)
    for batch in plan:
      slots_l = labels[batch].reshape(p, 2, k)
      slots_d = domains[batch].reshape(p, 2, k)
      assert (slots_l == slots_l[:, :1, :1]).all()  # one class per slot
      assert len(set(slots_l[:, 0, 0])) == p  # P distinct classes
      assert (slots_d[:, 0] == SKETCH).all() and (slots_d[:, 1] == PHOTO).all()
      assert (labels[batch][s.partner] == labels[batch]).all()
      assert (domains[batch][s.partner] != domains[batch]).all()


def test_steps_per_epoch_and_photo_coverage():
  # Photo counts multiples of K, no class above 1/P of the chunks and sum divisible by P:
  # every photo exactly once per epoch, and no sketch repeated within a class.
  photos = [4, 6, 2, 4, 8, 6]
  labels, domains = _dataset([9, 9, 9, 9, 9, 9], photos)
  s = sampler_lib.PKSampler(labels, domains, 3, 2, seed=3)
  assert s.steps_per_epoch == sum(photos) // 6
  for epoch in range(2):
    used = s.epoch(epoch).ravel()
    photo_counts = collections.Counter(i for i in used if domains[i] == PHOTO)
    assert sorted(photo_counts) == sorted(np.flatnonzero(domains == PHOTO))
    assert set(photo_counts.values()) == {1}
    sketch_counts = collections.Counter(i for i in used if domains[i] == SKETCH)
    assert set(sketch_counts.values()) == {1}


def test_dominant_class_is_capped_to_one_slot_per_batch():
  # Chunks (K=1) [10, 1, 1, 1], P=2: steps shrink 6 -> 4 -> 3 as class 0 is capped.
  labels, domains = _dataset([3, 3, 3, 3], [10, 1, 1, 1])
  s = sampler_lib.PKSampler(labels, domains, 2, 1, seed=0)
  assert s.steps_per_epoch == 3
  plan = s.epoch(0)
  assert all(0 in set(labels[b]) for b in plan)


def test_small_class_is_sampled_with_replacement():
  labels, domains = _dataset([1, 5, 5], [2, 6, 6])
  s = sampler_lib.PKSampler(labels, domains, 3, 4, seed=0)
  used = s.epoch(0).ravel()
  class0 = [i for i in used if labels[i] == 0]
  assert set(class0) == set(np.flatnonzero(labels == 0))  # all 3 items, repeated
  assert len(class0) == 8 * s.steps_per_epoch


def test_deterministic_by_seed_and_reshuffled_every_epoch():
  labels, domains = _dataset([6] * 8, [6] * 8)
  a = sampler_lib.PKSampler(labels, domains, 4, 2, seed=5)
  b = sampler_lib.PKSampler(labels, domains, 4, 2, seed=5)
  c = sampler_lib.PKSampler(labels, domains, 4, 2, seed=6)
  np.testing.assert_array_equal(a.epoch(1), b.epoch(1))
  np.testing.assert_array_equal(a.batch(a.steps_per_epoch + 2), b.epoch(1)[2])
  assert not np.array_equal(a.epoch(0), a.epoch(1))
  assert not np.array_equal(a.epoch(0), c.epoch(0))


@pytest.mark.parametrize("sketches, photos, p, k, message", [
    ([3, 3], [3, 3], 3, 1, "at least P=3 classes"),
    ([3, 0, 3], [3, 3, 3], 2, 1, "classes [1] have only one domain"),
    ([3, 3], [3, 3], 0, 1, "P >= 1 and K >= 1"),
])
def test_impossible_sampling_is_a_clear_error(sketches, photos, p, k, message):
  labels, domains = _dataset(sketches, photos)
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
    sampler_lib.PKSampler(labels, domains, p, k, seed=0)


def test_unknown_domain_is_an_error():
  with pytest.raises(ValueError, match="item 1 has 2"):
    sampler_lib.PKSampler(np.array([0, 0]), np.array([0, 2]), 1, 1, seed=0)
