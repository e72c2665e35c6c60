"""Approximate nearest neighbours, for galleries beyond exact search: a FAISS inverted file.

An IVF index clusters the gallery's unit vectors into `nlist` k-means cells and compares a
query, by exact inner product (cosine similarity), with the items of its `nprobe` nearest
cells only: a fraction nprobe / nlist of the exact search's work. With nprobe = nlist it is
exhaustive. FAISS (PyPI `faiss-cpu`, the `app` extra) is imported only here.
"""
import dataclasses
from typing import Any

import numpy as np

# k-means training vectors per cell: above the 39 FAISS asks for, far below its 256 cap.
TRAIN_PER_LIST = 64


@dataclasses.dataclass(frozen=True)
class IvfIndex:
  """A built FAISS IndexIVFFlat (inner product) over a gallery, searched with `nprobe` cells."""
  index: Any
  nprobe: int

  @property
  def nlist(self) -> int:
    return self.index.nlist


def build(embeddings: np.ndarray, nlist: int, nprobe: int, seed: int = 0) -> IvfIndex:
  """An IVF index of (G, D) L2-normalised embeddings, item ids = rows; k-means on at most
  TRAIN_PER_LIST * nlist of them, drawn with `seed`."""
  import faiss  # pylint: disable=g-import-not-at-top
  if not 1 <= nprobe <= nlist <= len(embeddings):
    raise ValueError(f"need 1 <= nprobe ({nprobe}) <= nlist ({nlist}) <= gallery size "
                     f"({len(embeddings)})")
  x = np.ascontiguousarray(embeddings, np.float32)
  index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist,
                             faiss.METRIC_INNER_PRODUCT)
  index.cp.seed = seed
  sample = np.random.default_rng(seed).permutation(len(x))[:TRAIN_PER_LIST * nlist]
  index.train(x[np.sort(sample)])
  index.add(x)
  index.nprobe = nprobe
  return IvfIndex(index, nprobe)


def nearest(index: IvfIndex, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Approximately the k gallery items most cosine-similar to each (Q, D) query, best first.

  Returns (indices (Q, k') int64, similarities (Q, k') float32) as `search.nearest`, k' =
  min(k, G); a query whose probed cells hold fewer than k' items gets fewer (its rows end in
  index -1, similarity -inf).
  """
  k = min(k, index.index.ntotal)
  scores, indices = index.index.search(np.ascontiguousarray(query, np.float32), k)
  scores = np.where(indices < 0, -np.inf, scores).astype(np.float32)
  return indices.astype(np.int64), scores
