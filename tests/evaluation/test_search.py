"""k-nearest-neighbour search against an exact integer ranking."""
import numpy as np

from zsbir_jax.evaluation import search


def test_nearest_is_the_stable_similarity_ranking():
  # Small-integer vectors: every dot product is exact in float32 and ties are everywhere.
  rng = np.random.default_rng(1)
  gallery = rng.integers(-2, 3, (40, 6)).astype(np.float32)
  query = rng.integers(-2, 3, (7, 6)).astype(np.float32)
  top, scores = search.nearest(query, gallery, k=12, block_size=3)
  similarity = query.astype(np.int64) @ gallery.astype(np.int64).T
  assert len(np.unique(similarity[0])) < 20  # ties decide the order
  for q in range(len(query)):
    expected = sorted(range(40), key=lambda j: (-similarity[q, j], j))[:12]
    np.testing.assert_array_equal(top[q], expected)
    np.testing.assert_array_equal(scores[q], similarity[q, expected])
  top, scores = search.nearest(query[:1], gallery, k=100)
  assert top.shape == scores.shape == (1, 40)
