"""Zero-shot evaluation of a model on a split: embed its unseen lists, score them, draw them.

Every unseen sketch (query) ranks every unseen photo (gallery) by the Euclidean distance of the
L2-normalised embeddings (`metrics`: SAKE's semantics, interpolated AP); optionally also by the
Hamming distance of 64-bit ITQ codes learned on the training photos, as the field reports.
Used by `experiments.evaluate` and the end-to-end synthetic run.
"""
import os

import numpy as np

from zsbir_jax import domains
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder as embedder_lib
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import hashing
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import plots
from zsbir_jax.evaluation import report
from zsbir_jax.evaluation import search


EMBEDDINGS_DIR = "embeddings"
QUERY, GALLERY, TRAIN_PHOTOS = "query", "gallery", "train_photos"


def compute_embeddings(workdir: str, which: str, split: source.Split, image_size: int,
                       batch_size: int, workers: int,
                       with_train_photos: bool) -> dict[str, embeddings.EmbeddingSet]:
  """Embeds the split's queries and gallery (and training photos) with the run's checkpoint.

  `split`: source.open_split of the config's data block (either data.source).
  """
  embedder = embedder_lib.load_embedder(workdir, which, image_size or None)
  parts = {QUERY: (split.query, split.unseen_classes),
           GALLERY: (split.gallery, split.unseen_classes)}
  if with_train_photos:
    photos = np.flatnonzero(split.train.domains == domains.PHOTO)
    parts[TRAIN_PHOTOS] = (source.Selection((split.train, photos)), split.seen_classes)
  # One pass over all lists: one compilation, one padded batch.
  z = embedder_lib.extract(embedder, source.Selection(*(items for items, _ in parts.values())),
                           batch_size, workers=workers)
  sets, start = {}, 0
  for name, (items, classes) in parts.items():
    sets[name] = embeddings.from_source(items, z[start:start + len(items)], classes, split.name,
                                        embedder.identity)
    start += len(items)
  return sets


def load_embeddings(directory: str, with_train_photos: bool) -> dict[str, embeddings.EmbeddingSet]:
  """Reads `<directory>/{query,gallery[,train_photos]}.npz`; they must share split and model."""
  names = [QUERY, GALLERY] + ([TRAIN_PHOTOS] if with_train_photos else [])
  sets = {name: embeddings.load(os.path.join(directory, f"{name}.npz")) for name in names}
  for name, s in sets.items():
    if (s.split, s.model) != (sets[QUERY].split, sets[QUERY].model):
      raise ValueError(f"{directory}: {name}.npz was made by another model or split than "
                       f"query.npz ({s.split}, step {s.model.step} of {s.model.workdir} vs "
                       f"{sets[QUERY].split}, step {sets[QUERY].model.step} of "
                       f"{sets[QUERY].model.workdir})")
  return sets


def evaluate(sets: dict[str, embeddings.EmbeddingSet], hash_bits: int, metric_names: list[str],
             **conventions: str) -> list[tuple[report.EmbeddingKind, metrics.Evaluation]]:
  """Real-valued evaluation, plus ITQ codes (learned on the training photos) if hash_bits;
  `conventions`: `no_relevant`, `map_at_k` of `metrics.evaluate`."""
  query, gallery = sets[QUERY], sets[GALLERY]
  results = [(report.EmbeddingKind("real", query.embeddings.shape[1]),
              metrics.evaluate(query.embeddings, query.labels, gallery.embeddings,
                               gallery.labels, metrics=metric_names, **conventions))]
  if hash_bits:
    train = sets[TRAIN_PHOTOS]
    itq = hashing.fit_itq(train.embeddings, hash_bits)
    results.append((report.EmbeddingKind("itq", hash_bits, len(train)),
                    metrics.evaluate(hashing.encode(itq, query.embeddings), query.labels,
                                     hashing.encode(itq, gallery.embeddings), gallery.labels,
                                     metrics=metric_names, distance="hamming", **conventions)))
  return results


def draw_pictures(sets: dict[str, embeddings.EmbeddingSet],
                  results: list[tuple[report.EmbeddingKind, metrics.Evaluation]],
                  ap_metric: str, output_dir: str, grid_queries: int, grid_k: int) -> list[str]:
  """Writes the retrieval grid (real-valued ranking), PR curves and per-class AP bars."""
  query, gallery = sets[QUERY], sets[GALLERY]
  # The first query of each class, in class order.
  _, first = np.unique(query.labels, return_index=True)
  rows = first[:grid_queries]
  top, scores = search.nearest(query.embeddings[rows], gallery.embeddings, grid_k)
  paths = [os.path.join(output_dir, name) for name in ("retrieval_grid.png", "pr_curve.png")]
  plots.retrieval_grid([query.paths[i] for i in rows],
                       [[gallery.paths[j] for j in row] for row in top],
                       gallery.labels[top] == query.labels[rows, None], paths[0], scores=scores)
  plots.pr_curves({f"{query.split}, {kind.label()}": (e.pr_recall, e.pr_precision)
                   for kind, e in results}, paths[1],
                  title=f"Interpolated precision-recall, {query.split} unseen classes")
  for kind, e in results:
    paths.append(os.path.join(output_dir, f"per_class_ap_{kind.kind}.png"))
    plots.per_class_ap([query.class_names[c] for c in e.classes], e.per_class[ap_metric],
                       paths[-1], title=f"Per-class {report.metric_title(ap_metric)}, "
                       f"{query.split}, {kind.label()}")
  return paths
