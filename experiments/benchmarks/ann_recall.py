r"""Approximate search (FAISS IVF, `zsbir_jax.evaluation.ann`) against exact search at 1M photos.

  python -m experiments.benchmarks.ann_recall          # 1,000,000 x 128, 100 queries

Two galleries of unit vectors (D 128, the synthetic run's embedding size): "clustered", a
mixture of --clusters classes around random directions, as trained embeddings group by class;
and "uniform", isotropic Gaussian directions, the worst case for any index. The queries are
perturbed gallery items (clustered) or fresh random directions (uniform). Prints the index's
build time, then per search: recall@10 against exact search (the share of the exact top 10
found) and the median time of one query (single-query calls, as the app makes them).
"""
import time

from absl import app
from absl import flags
import numpy as np

from zsbir_jax.evaluation import ann
from zsbir_jax.evaluation import search

_SIZE = flags.DEFINE_integer("size", 1_000_000, "Gallery vectors.", lower_bound=1)
_DIM = flags.DEFINE_integer("dim", 128, "Embedding size.", lower_bound=1)
_QUERIES = flags.DEFINE_integer("queries", 100, "Query vectors per gallery.", lower_bound=1)
_CLUSTERS = flags.DEFINE_integer("clusters", 2000, "Classes of the clustered gallery.",
                                 lower_bound=1)
_NLIST = flags.DEFINE_integer("nlist", 1024, "Cells (k-means centroids) of the IVF index.",
                             lower_bound=1)
_NPROBES = flags.DEFINE_list("nprobes", ["4", "16", "64"], "Cells visited per query.")
_K = 10


def unit(x: np.ndarray) -> np.ndarray:
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def galleries(rng: np.random.Generator):
  """(name, gallery (N, D), queries (Q, D)) of each kind, unit vectors."""
  n, d, q = _SIZE.value, _DIM.value, _QUERIES.value
  centers = unit(rng.standard_normal((_CLUSTERS.value, d)))
  # Noise of norm ~1 puts items ~45 degrees from their class direction: grouped, not identical.
  x = unit(centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, d),
                                                                          np.float32) / np.sqrt(d))
  yield "clustered", x, unit(x[rng.integers(0, n, q)] + 0.5 * rng.standard_normal((q, d)) /
                              np.sqrt(d))
  del x
  yield "uniform", unit(rng.standard_normal((n, d), np.float32)), unit(
      rng.standard_normal((q, d)))


def per_query(fn, queries: np.ndarray) -> tuple[np.ndarray, float]:
  """(top-k indices (Q, k), median seconds of one call) of fn(query (1, D)) over the queries."""
  tops, seconds = [], []
  for row in queries:
    start = time.perf_counter()
    top, _ = fn(row[None])
    seconds.append(time.perf_counter() - start)
    tops.append(top[0])
  return np.stack(tops), float(np.median(seconds))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rng = np.random.default_rng(0)
  print(f"{_SIZE.value:,} x {_DIM.value} gallery, {_QUERIES.value} queries, top {_K}, "
        f"IVF {_NLIST.value} cells; one query per call, median ms")
  print("| gallery | search | recall@10 | ms per query |")
  print("|---|---|---|---|")
  for name, gallery, queries in galleries(rng):
    exact, exact_s = per_query(lambda q: search.nearest(q, gallery, _K), queries)
    print(f"| {name} | exact | 1 | {1e3 * exact_s:.1f} |", flush=True)
    start = time.perf_counter()
    index = ann.build(gallery, _NLIST.value, 1)
    build_s = time.perf_counter() - start
    for nprobe in map(int, _NPROBES.value):
      index.index.nprobe = nprobe
      found, ivf_s = per_query(lambda q: ann.nearest(index, q, _K), queries)
      recall = np.mean([len(np.intersect1d(a, b)) / _K for a, b in zip(found, exact)])
      print(f"| {name} | IVF, nprobe {nprobe} (index built in {build_s:.0f} s) | "
            f"{recall:.3f} | {1e3 * ivf_s:.2f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
