"""A training run's retrieval model, restored for inference, and its embeddings of image lists.

`load_embedder` restores a run's model (`model.json`, with the input normalisation it was
trained with, a checkpoint, the input size and sketch framing of its `config.json`); `extract`
runs the jitted, sharded `retrieval.embed` over a source (a split's list of
`data.source.open_split`, image files, a Selection) with `inference.predict_source` (every item
exactly once, in order).
"""
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import numpy as np

from zsbir_jax import inference
from zsbir_jax.data import augment
from zsbir_jax.evaluation import embeddings
from zsbir_jax.models import retrieval

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A restored retrieval model: `variables` {'params', 'batch_stats'} as NumPy."""
  model: retrieval.RetrievalModel
  variables: dict[str, Any]
  identity: embeddings.ModelIdentity


def load_embedder(workdir: str, which: str = "best", image_size: int | None = None) -> Embedder:
  """Restores the `which` checkpoint of the training run in `workdir`.

  The input normalisation is the run's (`model.json`), the input size and sketch framing too
  (`config.json`, data.image_size and data.crop_sketch_to_ink); `image_size` overrides the
  size, and is required when the run has no config.json.
  """
  model, spec = retrieval.load_spec(workdir), retrieval.read_spec(workdir)
  config_path = os.path.join(workdir, CONFIG_FILE)
  data_config = {}
  if os.path.isfile(config_path):
    with open(config_path) as f:
      data_config = json.load(f).get("data", {})
  size = image_size or data_config.get("image_size")
  if not size:
    raise ValueError(f"no data.image_size in {config_path}: pass the input size explicitly")
  variables, step = inference.load_model_variables(workdir, which)
  identity = embeddings.ModelIdentity(
      workdir=os.path.abspath(workdir), which=which, step=int(step), spec=spec,
      image_size=int(size), crop_sketch_to_ink=bool(data_config.get("crop_sketch_to_ink", False)))
  return Embedder(model, variables, identity)


def extract(embedder: Embedder, items, batch_size: int, *,
            mesh: jax.sharding.Mesh | None = None, workers: int = 0) -> np.ndarray:
  """(N, D) float32 L2-normalised embeddings of source `items` by a restored model."""
  return embed_source(embedder.model, embedder.variables, items,
                       embedder.identity.input_config(), batch_size, mesh=mesh, workers=workers)


def embed_source(model: retrieval.RetrievalModel, variables: Any, items,
                 input_config: augment.AugmentConfig, batch_size: int, *,
                 mesh: jax.sharding.Mesh | None = None, workers: int = 0) -> np.ndarray:
  """(N, D) float32 L2-normalised embeddings of the items of a source, row i of items[i].

  Images are preprocessed per their domain as in evaluation (no augmentation) and embedded in
  global batches of `batch_size` split over the mesh's devices (default: all); the last batch
  is padded and its padding dropped. `variables` may be host arrays or global jax.Arrays.
  """
  z = inference.predict_source(functools.partial(retrieval.embed, model), variables, items,
                               input_config, batch_size, mesh=mesh, workers=workers)
  return z.astype(np.float32)
