"""The app's queries without the page: uploads decoded within limits, results with seen flags.

`query` is what `experiments.app` answers a sketch with (the library's `search.Retriever`:
the gallery's preprocessing, `embed`, exact search), timed by stage. Defines no flags, so the
app and its latency benchmark (experiments/benchmarks/app_latency.py) can both import it.
"""
from collections.abc import Sequence
import dataclasses
import json
import os
import time

import numpy as np

from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.evaluation import embedder
from zsbir_jax.evaluation import search

# A drawn or scanned sketch is a few hundred KB at most; the limits refuse anything far beyond
# before it is decoded (the pixel count is read from the header).
MAX_UPLOAD_BYTES = 8 * 2**20
MAX_PIXELS = 4096 * 4096


@dataclasses.dataclass(frozen=True)
class Answer:
  """A query's results: `search.rank`'s items with "seen" (True, False or None: unknown), and
  the seconds of its stages ("embed", with preprocessing, and "search")."""
  results: list[dict]
  seconds: dict[str, float]


def seen_classes(workdir: str) -> frozenset[str] | None:
  """The seen (training) classes of a run, from its config.json's data root and split.

  None when the run does not record them or its data is not where it was trained.
  """
  try:
    with open(os.path.join(workdir, embedder.CONFIG_FILE)) as f:
      data = json.load(f).get("data", {})
    spec = lists.get_split(data["split"])
    return frozenset(lists.read_class_names(os.path.join(
        data["root"], spec.dataset_dir, spec.list_dir, spec.seen_class_file)))
  except (OSError, KeyError, ValueError):
    return None


def decode_upload(path: str) -> np.ndarray:
  """An uploaded file as RGB uint8 (H, W, 3); BadImageError beyond the limits or undecodable."""
  name = os.path.basename(path)
  size = os.path.getsize(path)
  if size > MAX_UPLOAD_BYTES:
    raise images.BadImageError(name, f"{size} bytes, more than the {MAX_UPLOAD_BYTES} allowed")
  with open(path, "rb") as f:
    return images.decode_rgb(f.read(), name, max_pixels=MAX_PIXELS)


def query(retriever: search.Retriever, image: np.ndarray, k: int,
          class_names: Sequence[str] = (), seen: frozenset[str] | None = None) -> Answer:
  """Top-k gallery photos for a decoded sketch (RGB uint8), optionally of `class_names` only."""
  start = time.perf_counter()
  z = search.embed_images(retriever, [image], domains.SKETCH)
  embedded = time.perf_counter()
  names = retriever.gallery.class_names
  labels = [names.index(c) for c in class_names] if class_names else None
  results = search.rank(retriever, z, k, labels)[0]
  done = time.perf_counter()
  for item in results:
    item["seen"] = None if seen is None else item["class"] in seen
  return Answer(results, {"embed": embedded - start, "search": done - embedded})
