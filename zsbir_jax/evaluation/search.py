"""k-nearest-neighbour search of stored embeddings: a gallery ranked by cosine similarity.

`nearest` ranks a gallery for each query, which for unit vectors is the Euclidean ranking of
the metrics; `search` embeds query image files with the gallery's model and ranks the gallery.
"""
import dataclasses
import os

import numpy as np

from zsbir_jax.data import lists
from zsbir_jax.evaluation import embedder as embedder_lib
from zsbir_jax.evaluation import embeddings


def nearest(query: np.ndarray, gallery: np.ndarray, k: int,
            block_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
  """The k gallery items most cosine-similar to each query, best first.

  Args:
    query: (Q, D) L2-normalised embeddings.
    gallery: (G, D) L2-normalised embeddings.
    k: items per query (at most G are returned).
    block_size: queries per (block_size, G) similarity block.

  Returns:
    (indices (Q, k') int64, similarities (Q, k') float32), k' = min(k, G); equal similarities
    are ordered by gallery index, as in the metrics.
  """
  k = min(k, len(gallery))
  gallery = np.asarray(gallery, np.float32)
  indices, scores = [], []
  for start in range(0, len(query), block_size):
    similarity = np.asarray(query[start:start + block_size], np.float32) @ gallery.T
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    indices.append(top)
    scores.append(np.take_along_axis(similarity, top, axis=1))
  if not indices:
    return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
  return np.concatenate(indices).astype(np.int64), np.concatenate(scores)


def search(query_paths: list[str], gallery: embeddings.EmbeddingSet, top_k: int, domain: int,
           batch_size: int, workdir: str | None = None) -> list[dict]:
  """Embeds image files with the gallery's model; returns per query its top_k gallery items.

  The gallery's training run (`workdir` if it has moved) must still hold the checkpoint that
  embedded the gallery; the queries are prepared exactly as the gallery was.

  Each result: {"query": path, "results": [{"rank", "path", "score" (cosine similarity),
  "label", "class"}, ...]}.
  """
  for path in query_paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no query image {path}")
  identity = gallery.model
  embedder = embedder_lib.load_embedder(workdir or identity.workdir, identity.which,
                                        identity.image_size)
  if (embedder.identity.step, embedder.identity.spec) != (identity.step, identity.spec):
    raise ValueError(f"the gallery was embedded by step {identity.step} of {identity.workdir}, "
                     f"but {embedder.identity.workdir} has step {embedder.identity.step} "
                     f"({identity.which}) or another model; re-embed the gallery")
  embedder = dataclasses.replace(embedder, identity=identity)
  records = [lists.Record(os.path.abspath(p), -1, domain) for p in query_paths]
  z = embedder_lib.extract(embedder, records, batch_size)
  top, scores = nearest(z, gallery.embeddings, top_k)
  return [{"query": path, "results": [
      {"rank": rank + 1, "path": gallery.paths[j], "score": float(score),
       "label": int(gallery.labels[j]), "class": gallery.class_names[gallery.labels[j]]}
      for rank, (j, score) in enumerate(zip(row, row_scores))]}
          for path, row, row_scores in zip(query_paths, top, scores)]
