"""Retrieval embeddings of image lists: extracted once with the trained model, stored, searched.

`load_embedder` restores a training run's model (`model.json`, a checkpoint, the input size and
sketch framing of its `config.json`); `extract` runs the jitted, sharded `retrieval.embed` over
records with `inference.predict_records` (every item exactly once, in order).
An `EmbeddingSet` holds L2-normalised embeddings z (N, D) with each item's path, label and
domain, the names of the labels and the model's identity; `save` / `load` write it as `.npz`
(no pickles), so that evaluation and retrieval run without the model. `nearest` ranks a gallery
by cosine similarity, which for unit vectors is the Euclidean ranking of the metrics.
"""
from collections.abc import Sequence
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import numpy as np

from zsbir_jax import domains
from zsbir_jax import inference
from zsbir_jax.data import augment
from zsbir_jax.data import lists
from zsbir_jax.models import retrieval

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
  """Which model made a set of embeddings, and how its inputs were prepared.

  Attributes:
    workdir: the training run (absolute path).
    which: the checkpoint asked for, "best" or "latest".
    step: the training step of the checkpoint used.
    spec: the run's `model.json` (RetrievalModel attributes).
    image_size: input side in pixels.
    crop_sketch_to_ink: whether sketches were framed by their ink (augment.AugmentConfig).
  """
  workdir: str
  which: str
  step: int
  spec: dict[str, Any]
  image_size: int
  crop_sketch_to_ink: bool

  def input_config(self) -> augment.AugmentConfig:
    """The evaluation preprocessing these embeddings were (or must be) made with."""
    return augment.AugmentConfig(size=self.image_size, crop_sketch_to_ink=self.crop_sketch_to_ink)


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A restored retrieval model: `variables` {'params', 'batch_stats'} as NumPy."""
  model: retrieval.RetrievalModel
  variables: dict[str, Any]
  identity: ModelIdentity


def load_embedder(workdir: str, which: str = "best", image_size: int | None = None) -> Embedder:
  """Restores the `which` checkpoint of the training run in `workdir`.

  The input size and sketch framing are the run's (`config.json`, data.image_size and
  data.crop_sketch_to_ink); `image_size` overrides the size, and is required when the run has
  no config.json.
  """
  model = retrieval.load_spec(workdir)
  with open(os.path.join(workdir, retrieval.SPEC_FILE)) as f:
    spec = json.load(f)
  config_path = os.path.join(workdir, CONFIG_FILE)
  data_config = {}
  if os.path.isfile(config_path):
    with open(config_path) as f:
      data_config = json.load(f).get("data", {})
  size = image_size or data_config.get("image_size")
  if not size:
    raise ValueError(f"no data.image_size in {config_path}: pass the input size explicitly")
  variables, step = inference.load_model_variables(workdir, which)
  identity = ModelIdentity(
      workdir=os.path.abspath(workdir), which=which, step=int(step), spec=spec,
      image_size=int(size), crop_sketch_to_ink=bool(data_config.get("crop_sketch_to_ink", False)))
  return Embedder(model, variables, identity)


def extract(embedder: Embedder, records: Sequence[lists.Record], batch_size: int, *,
            mesh: jax.sharding.Mesh | None = None, workers: int = 0) -> np.ndarray:
  """(N, D) float32 L2-normalised embeddings of `records` by a restored model (`embed_records`)."""
  return embed_records(embedder.model, embedder.variables, records,
                       embedder.identity.input_config(), batch_size, mesh=mesh, workers=workers)


def embed_records(model: retrieval.RetrievalModel, variables: Any,
                  records: Sequence[lists.Record], input_config: augment.AugmentConfig,
                  batch_size: int, *, mesh: jax.sharding.Mesh | None = None,
                  workers: int = 0) -> np.ndarray:
  """(N, D) float32 L2-normalised embeddings of `records`, row i of records[i].

  Images are preprocessed per their domain as in evaluation (no augmentation) and embedded in
  global batches of `batch_size` split over the mesh's devices (default: all); the last batch
  is padded and its padding dropped. `variables` may be host arrays or global jax.Arrays.
  """
  z = inference.predict_records(functools.partial(retrieval.embed, model), variables, records,
                                input_config, batch_size, mesh=mesh, workers=workers)
  return z.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class EmbeddingSet:
  """Embeddings of a list of images.

  Attributes:
    embeddings: (N, D) float32, L2-normalised.
    paths: N image paths.
    labels: (N,) int64 class ids indexing `class_names` (-1 for unlabelled queries).
    domains: (N,) int64, domains.SKETCH or domains.PHOTO.
    class_names: names of the class ids.
    split: the split the records come from ("" if none).
    model: the model that made them.
  """
  embeddings: np.ndarray
  paths: tuple[str, ...]
  labels: np.ndarray
  domains: np.ndarray
  class_names: tuple[str, ...]
  split: str
  model: ModelIdentity

  def __len__(self) -> int:
    return len(self.paths)


def from_records(records: Sequence[lists.Record], embeddings: np.ndarray,
                 class_names: Sequence[str], split: str, model: ModelIdentity) -> EmbeddingSet:
  """An EmbeddingSet of `records` and their (N, D) embeddings."""
  if len(records) != len(embeddings):
    raise ValueError(f"{len(records)} records but {len(embeddings)} embeddings")
  return EmbeddingSet(
      embeddings=np.asarray(embeddings, np.float32), paths=tuple(r.path for r in records),
      labels=np.array([r.label for r in records], np.int64),
      domains=np.array([r.domain for r in records], np.int64),
      class_names=tuple(class_names), split=split, model=model)


def save(path: str, embeddings: EmbeddingSet) -> None:
  """Writes `embeddings` as .npz: arrays embeddings, paths, labels, domains; JSON `meta`."""
  meta = {"class_names": list(embeddings.class_names), "split": embeddings.split,
          "model": dataclasses.asdict(embeddings.model)}
  with open(path, "wb") as f:
    np.savez(f, embeddings=embeddings.embeddings, paths=np.array(embeddings.paths, np.str_),
             labels=embeddings.labels, domains=embeddings.domains,
             meta=np.asarray(json.dumps(meta)))


def load(path: str) -> EmbeddingSet:
  """Reads an .npz written by `save`; errors name the file and what is wrong."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no embeddings file {path}")
  with np.load(path) as data:
    missing = {"embeddings", "paths", "labels", "domains", "meta"} - set(data.files)
    if missing:
      raise ValueError(f"{path} is not an embeddings file: missing {sorted(missing)}")
    arrays = {k: data[k] for k in ("embeddings", "paths", "labels", "domains")}
    meta = json.loads(str(data["meta"]))
  n = len(arrays["paths"])
  if (arrays["embeddings"].ndim != 2 or len(arrays["embeddings"]) != n
      or arrays["labels"].shape != (n,) or arrays["domains"].shape != (n,)):
    raise ValueError(f"{path}: inconsistent shapes " +
                     ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
  return EmbeddingSet(
      embeddings=arrays["embeddings"].astype(np.float32),
      paths=tuple(str(p) for p in arrays["paths"]), labels=arrays["labels"].astype(np.int64),
      domains=arrays["domains"].astype(np.int64), class_names=tuple(meta["class_names"]),
      split=meta["split"], model=ModelIdentity(**meta["model"]))


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


def search(query_paths: list[str], gallery: EmbeddingSet, top_k: int, domain: int,
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
  embedder = load_embedder(workdir or identity.workdir, identity.which, identity.image_size)
  if (embedder.identity.step, embedder.identity.spec) != (identity.step, identity.spec):
    raise ValueError(f"the gallery was embedded by step {identity.step} of {identity.workdir}, "
                     f"but {embedder.identity.workdir} has step {embedder.identity.step} "
                     f"({identity.which}) or another model; re-embed the gallery")
  embedder = dataclasses.replace(embedder, identity=identity)
  records = [lists.Record(os.path.abspath(p), -1, domain) for p in query_paths]
  z = extract(embedder, records, batch_size)
  top, scores = nearest(z, gallery.embeddings, top_k)
  return [{"query": path, "results": [
      {"rank": rank + 1, "path": gallery.paths[j], "score": float(score),
       "label": int(gallery.labels[j]), "class": gallery.class_names[gallery.labels[j]]}
      for rank, (j, score) in enumerate(zip(row, row_scores))]}
          for path, row, row_scores in zip(query_paths, top, scores)]
