"""k-nearest-neighbour search of stored embeddings: a gallery ranked by cosine similarity.

`nearest` ranks a gallery for each query, which for unit vectors is the Euclidean ranking of
the metrics. A `Retriever` (`load_retriever`) holds a gallery with the model that embedded it:
`embed_images` embeds decoded query images as the gallery was embedded and `rank` ranks the
gallery for them; `search` does both for image files.
"""
from collections.abc import Sequence
import dataclasses
import os

import jax
import numpy as np

from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.evaluation import ann
from zsbir_jax.evaluation import embedder as embedder_lib
from zsbir_jax.evaluation import embeddings
from zsbir_jax.models import retrieval


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


@dataclasses.dataclass(frozen=True)
class Retriever:
  """A gallery with the restored model that embedded it: embeds query images, ranks the gallery.

  The one query path of `experiments.retrieve` and `experiments.app`. With an `index` (see
  `ann`), unfiltered rankings are approximate; without, exact.
  """
  gallery: embeddings.EmbeddingSet
  embedder: embedder_lib.Embedder
  index: ann.IvfIndex | None = None


def load_retriever(gallery: embeddings.EmbeddingSet, workdir: str | None = None) -> Retriever:
  """Restores the model that embedded `gallery` from its training run (`workdir` if moved).

  The run must still hold the checkpoint that embedded the gallery; queries are then prepared
  exactly as the gallery was (its recorded input size, framing and normalisation).
  """
  identity = gallery.model
  embedder = embedder_lib.load_embedder(workdir or identity.workdir, identity.which,
                                        identity.image_size)
  if (embedder.identity.step, embedder.identity.spec) != (identity.step, identity.spec):
    raise ValueError(f"the gallery was embedded by step {identity.step} of {identity.workdir}, "
                     f"but {embedder.identity.workdir} has step {embedder.identity.step} "
                     f"({identity.which}) or another model; re-embed the gallery")
  return Retriever(gallery, dataclasses.replace(embedder, identity=identity))


# One compilation per model and batch shape, kept across queries (the model is hashable).
_embed = jax.jit(retrieval.embed, static_argnums=0)


def embed_images(retriever: Retriever, images: Sequence[np.ndarray], domain: int,
                 batch_size: int = 1) -> np.ndarray:
  """(N, D) float32 L2-normalised embeddings of decoded RGB uint8 (H, W, 3) images.

  Each image is preprocessed for `domain` as in evaluation (`augment.preprocess`) and embedded
  on one device in batches of `batch_size`, the last one padded (so one compilation serves all).
  """
  config = retriever.embedder.identity.input_config()
  x = np.stack([augment.preprocess(image, domain, config) for image in images])
  padded = -(-len(x) // batch_size) * batch_size
  x = np.concatenate([x, np.zeros((padded - len(x),) + x.shape[1:], x.dtype)])
  model, variables = retriever.embedder.model, retriever.embedder.variables
  z = [np.asarray(_embed(model, variables, x[i:i + batch_size]))
       for i in range(0, padded, batch_size)]
  return np.concatenate(z)[:len(images)].astype(np.float32)


def rank(retriever: Retriever, z: np.ndarray, top_k: int,
         labels: Sequence[int] | None = None) -> list[list[dict]]:
  """Per query embedding (Q, D), its top_k gallery items, best first.

  `labels` restricts the ranking to the gallery items of those class ids (searched exactly,
  with or without an index). Each item: {"rank", "path", "score" (cosine similarity),
  "distance" (Euclidean, of the unit vectors, as in the metrics), "label", "class"}.
  """
  gallery = retriever.gallery
  candidates = np.arange(len(gallery))
  if labels is not None:
    candidates = np.flatnonzero(np.isin(gallery.labels, list(labels)))
    top, scores = nearest(z, gallery.embeddings[candidates], top_k)
  elif retriever.index is not None:
    top, scores = ann.nearest(retriever.index, z, top_k)
  else:
    top, scores = nearest(z, gallery.embeddings, top_k)
  results = []
  for query, row, row_scores in zip(z, top, scores):
    items = candidates[row[row >= 0]]
    # Computed from the vectors in float64: sqrt(2 - 2 * score) loses ~sqrt(eps) near 0.
    distances = np.linalg.norm(gallery.embeddings[items].astype(np.float64)
                               - np.asarray(query, np.float64), axis=1)
    results.append([{"rank": r + 1, "path": gallery.paths[j], "score": float(score),
                     "distance": float(distance), "label": int(gallery.labels[j]),
                     "class": gallery.class_names[gallery.labels[j]]}
                    for r, (j, score, distance) in enumerate(zip(items, row_scores, distances))])
  return results


def search(query_paths: list[str], gallery: embeddings.EmbeddingSet, top_k: int, domain: int,
           batch_size: int, workdir: str | None = None) -> list[dict]:
  """Embeds image files with the gallery's model; returns per query its top_k gallery items.

  `load_retriever`, `embed_images` and `rank` of the decoded files. Each result: {"query":
  path, "results": [items of `rank`]}.
  """
  for path in query_paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no query image {path}")
  retriever = load_retriever(gallery, workdir)
  z = embed_images(retriever, [images.load_rgb(p) for p in query_paths], domain, batch_size)
  return [{"query": path, "results": results}
          for path, results in zip(query_paths, rank(retriever, z, top_k))]
