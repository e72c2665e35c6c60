"""Stored embeddings of image lists: what evaluation and retrieval read, without the model.

An `EmbeddingSet` holds L2-normalised embeddings z (N, D) with each item's path, label and
domain, the names of the labels and the `ModelIdentity` of the model that made them (see
`embedder` for making them); `save` / `load` write it as `.npz` (no pickles).
"""
from collections.abc import Sequence
import dataclasses
import json
import os
from typing import Any

import numpy as np

from zsbir_jax.data import augment
from zsbir_jax.models import retrieval


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
  """Which model made a set of embeddings, and how its inputs were prepared.

  Attributes:
    workdir: the training run (absolute path).
    which: the checkpoint asked for, "best" or "latest".
    step: the training step of the checkpoint used.
    spec: the run's `model.json` (RetrievalModel attributes and input normalisation).
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
    mean, std = retrieval.input_normalization(self.spec)
    return augment.AugmentConfig(size=self.image_size, crop_sketch_to_ink=self.crop_sketch_to_ink,
                                 input_mean=mean, input_std=std)


@dataclasses.dataclass(frozen=True)
class EmbeddingSet:
  """Embeddings of a list of images.

  Attributes:
    embeddings: (N, D) float32, L2-normalised.
    paths: N image paths (of a TFDS build: relative to the data root it was built from).
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


def from_source(items, embeddings: np.ndarray, class_names: Sequence[str], split: str,
                model: ModelIdentity) -> EmbeddingSet:
  """An EmbeddingSet of the items of a source (their paths, labels, domains) and their (N, D)
  embeddings."""
  if len(items) != len(embeddings):
    raise ValueError(f"{len(items)} items but {len(embeddings)} embeddings")
  return EmbeddingSet(
      embeddings=np.asarray(embeddings, np.float32), paths=tuple(items.paths),
      labels=np.asarray(items.labels, np.int64), domains=np.asarray(items.domains, np.int64),
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
