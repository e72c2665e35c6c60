r"""Latency of one sketch query of the app, end to end: decode, preprocess, embed, search.

  python -m experiments.benchmarks.app_latency --workdir=runs/synthetic

The app's own path (`sketch_queries.decode_upload` and `query`: one sketch, the gallery's
preprocessing, the jitted `embed` on one device, exact search) for sketch files of the unseen
queries, timed per query after warm-up (the compilation). First with the real gallery (the
synthetic run's 750 unseen photos), then with a gallery of --random_gallery random unit vectors
of the model's dimension (default: QuickDraw-30's 54,151 gallery photos), exact search.
"""
import dataclasses
import time

from absl import app
from absl import flags
import numpy as np

from experiments import sketch_queries
from experiments import synthetic_workspace
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search
from zsbir_jax.evaluation import zero_shot

_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic", "A run_synthetic workspace.")
_QUERIES = flags.DEFINE_integer("queries", 20, "Timed queries per gallery.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed queries first.", lower_bound=1)
_RANDOM_GALLERY = flags.DEFINE_integer("random_gallery", 54_151, "Size of the random gallery "
                                       "(QuickDraw-30's gallery).", lower_bound=1)
_TOP_K = flags.DEFINE_integer("top_k", 10, "Photos per query.", lower_bound=1)


def time_queries(retriever: search.Retriever, sketches: list[str]) -> dict[str, np.ndarray]:
  """Seconds of each stage (decode, embed incl. preprocessing, search, total) per query."""
  stages = {"decode": [], "embed": [], "search": [], "total": []}
  for i in range(_WARMUP.value + _QUERIES.value):
    start = time.perf_counter()
    image = sketch_queries.decode_upload(sketches[i % len(sketches)])
    decoded = time.perf_counter()
    answer = sketch_queries.query(retriever, image, _TOP_K.value)
    total = time.perf_counter() - start
    if i >= _WARMUP.value:
      for name, seconds in [("decode", decoded - start), *answer.seconds.items(),
                            ("total", total)]:
        stages[name].append(seconds)
  return {k: np.array(v) for k, v in stages.items()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workspace = synthetic_workspace.Workspace(_WORKDIR.value)
  gallery_path = synthetic_workspace.unseen_gallery(workspace)
  gallery = embeddings.load(gallery_path)
  sketches = list(embeddings.load(gallery_path.replace(
      f"{zero_shot.GALLERY}.npz", f"{zero_shot.QUERY}.npz")).paths)
  retriever = search.load_retriever(gallery)
  rng = np.random.default_rng(0)
  z = rng.standard_normal((_RANDOM_GALLERY.value, gallery.embeddings.shape[1]), np.float32)
  random_gallery = dataclasses.replace(
      gallery, embeddings=z / np.linalg.norm(z, axis=1, keepdims=True),
      paths=tuple(gallery.paths[i % len(gallery)] for i in range(len(z))),
      labels=gallery.labels[np.arange(len(z)) % len(gallery)],
      domains=gallery.domains[np.arange(len(z)) % len(gallery)])
  print(f"one query, {_QUERIES.value} timed after {_WARMUP.value}, top-{_TOP_K.value}, "
        f"model step {gallery.model.step} of {gallery.model.workdir} "
        f"({gallery.model.image_size} px, D {gallery.embeddings.shape[1]}); median (min) ms")
  print("| gallery | decode | preprocess + embed | search (exact) | total |")
  print("|---|---|---|---|---|")
  for name, g in [(f"synthetic unseen, {len(gallery):,} photos", gallery),
                  (f"random, {len(random_gallery):,} vectors", random_gallery)]:
    stages = time_queries(dataclasses.replace(retriever, gallery=g), sketches)
    print(f"| {name} | " + " | ".join(
        f"{1e3 * np.median(stages[s]):.1f} ({1e3 * stages[s].min():.1f})"
        for s in ("decode", "embed", "search", "total")) + " |")


if __name__ == "__main__":
  app.run(main)
