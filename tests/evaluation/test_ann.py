"""The FAISS IVF index against exact search over the items of the cells it probes."""
import numpy as np
import pytest

from zsbir_jax import domains
from zsbir_jax.evaluation import ann
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search


def unit(x: np.ndarray) -> np.ndarray:
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_is_exact_search_over_its_probed_cells():
  rng = np.random.default_rng(0)
  gallery, query = unit(rng.standard_normal((2000, 16))), unit(rng.standard_normal((9, 16)))
  index = ann.build(gallery, nlist=20, nprobe=3)
  # Each item's cell and each query's probed cells, from the index's own k-means centroids.
  _, cell = index.index.quantizer.search(gallery, 1)
  _, probed = index.index.quantizer.search(query, 3)
  top, scores = ann.nearest(index, query, 12)
  for q in range(len(query)):
    items = np.flatnonzero(np.isin(cell[:, 0], probed[q]))
    exact, exact_scores = search.nearest(query[q:q + 1], gallery[items], 12)
    np.testing.assert_array_equal(top[q], items[exact[0]])
    np.testing.assert_allclose(scores[q], exact_scores[0], atol=1e-5)
  everything = ann.build(gallery, nlist=20, nprobe=20)  # exhaustive
  np.testing.assert_array_equal(ann.nearest(everything, query, 12)[0],
                                search.nearest(query, gallery, 12)[0])
  with pytest.raises(ValueError, match=r"nprobe \(21\) <= nlist \(20\)"):
    ann.build(gallery, nlist=20, nprobe=21)


def test_rank_uses_the_index_unless_filtered():
  rng = np.random.default_rng(1)
  z = unit(rng.standard_normal((300, 8)))
  gallery = embeddings.EmbeddingSet(
      embeddings=z, paths=tuple(f"p{i}.jpg" for i in range(300)), labels=np.arange(300) % 3,
      domains=np.full(300, domains.PHOTO), class_names=("a", "b", "c"), split="", model=None)
  index = ann.build(z, nlist=30, nprobe=1)
  exact = search.Retriever(gallery, embedder=None)
  approximate = search.Retriever(gallery, embedder=None, index=index)
  query = unit(rng.standard_normal((20, 8)))
  top, _ = ann.nearest(index, query, 10)
  for row, items in zip(top, search.rank(approximate, query, 10)):
    assert [r["path"] for r in items] == [f"p{j}.jpg" for j in row if j >= 0]
  assert search.rank(approximate, query, 10) != search.rank(exact, query, 10)  # 1 of 30 cells
  assert search.rank(approximate, query, 5, [1]) == search.rank(exact, query, 5, [1])
