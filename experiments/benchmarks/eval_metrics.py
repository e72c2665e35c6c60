"""Benchmark of the blocked evaluator against a SAKE-style per-query evaluator; prints a table.

  python -m experiments.benchmarks.eval_metrics

Random L2-normalised float32 embeddings (D = 512) with uniform random class labels, at the sizes
of QuickDraw-30 (92,291 queries x 54,151 photos, 30 classes) and Sketchy-25 (15,229 x 17,101,
25 classes). Each size is evaluated in a fresh process, whose peak resident memory
(`ru_maxrss`, inputs included) is reported; at Sketchy size `evaluate` runs `--repeats` times
there, and both the first call and the median are reported: the first call also pays for
faulting in its ~0.3 GB of fresh buffers, which on this VM costs up to ~1 ms per MB when the
host has reclaimed the memory (a few ms per 100 MB otherwise). The SAKE-style evaluator follows
the semantics of SAKE's evaluation code (written from them, not copied): scores = -scipy's
float64 `cdist`, then per query a full argsort, cumulative tp / fp and the VOC 2010
interpolation as a Python loop for mAP@all, and a second argsort for P@100, in one process. It
is timed on a random subset of the queries and extrapolated linearly, and its values on that
subset are compared with ours: both rank by float64 Euclidean distances (random data have no
ties, which SAKE's unstable sort would order arbitrarily), so they agree to the rounding of the
sums (~1e-16).
"""
import concurrent.futures
import multiprocessing
import os
import resource
import statistics
import time

from absl import app
from absl import flags
import numpy as np
from scipy.spatial import distance
import threadpoolctl

from zsbir_jax.evaluation import metrics

_SAKE_QUERIES = flags.DEFINE_integer(
    "sake_queries", 1000, "Sketchy-25 queries timed with the SAKE-style evaluator.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Calls of `evaluate` at Sketchy-25 size, in one process (one at QuickDraw "
    "size).")
_BLOCK_SIZE = flags.DEFINE_integer("block_size", 1024, "Queries per block of `evaluate`.")
_THREADS = flags.DEFINE_integer("threads", 2, "Worker threads of `evaluate`.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random embeddings and labels.")
_SCALE = flags.DEFINE_float(
    "scale", 1.0, "Multiplies both sizes' query and gallery counts (the targets are for 1).")

DIM = 512
QUICKDRAW = ("QuickDraw-30", 92_291, 54_151, 30, ("map@all", "p@100", "map@200", "p@200"))
SKETCHY = ("Sketchy-25", 15_229, 17_101, 25, ("map@all", "p@100"))


def scaled(case: tuple, scale: float) -> tuple:
  """A case (name, queries, gallery, classes, metrics) with its counts multiplied by scale."""
  name, n_query, n_gallery, n_classes, names = case
  return (name, max(1, round(n_query * scale)), max(1, round(n_gallery * scale)), n_classes,
          names)


def random_split(n_query: int, n_gallery: int, n_classes: int, seed: int):
  """Unit float32 (n, DIM) query / gallery embeddings and uniform labels in [0, n_classes)."""
  rng = np.random.default_rng(seed)
  out = []
  for n in (n_query, n_gallery):
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out += [x, rng.integers(0, n_classes, n)]
  return out


def run_ours(n_query: int, n_gallery: int, n_classes: int, names: tuple[str, ...], seed: int,
             block_size: int, threads: int, repeats: int):
  """`repeats` calls of `evaluate`: lists of their wall and CPU (all threads) seconds, the peak
  RSS in bytes, and the Evaluation."""
  q, ql, g, gl = random_split(n_query, n_gallery, n_classes, seed)
  walls, cpus = [], []
  for _ in range(repeats):
    start, cpu_start = time.perf_counter(), time.process_time()
    result = metrics.evaluate(q, ql, g, gl, metrics=names, block_size=block_size,
                              num_threads=threads)
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu_start)
  return walls, cpus, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, result


def in_fresh_process(fn, *args):
  """fn(*args) in a new (spawned) Python process, so that its peak RSS is its own."""
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
    return pool.submit(fn, *args).result()


def sake_style_voc_ap(label: int, scores: np.ndarray, gallery_labels: np.ndarray) -> float:
  """SAKE-style AP@all of one query: argsort, cumulative counts, VOC interpolation loop."""
  relevant = gallery_labels == label
  n_pos = relevant.sum()
  ranked = relevant[np.argsort(-scores)]
  tp = np.cumsum(ranked)
  fp = np.cumsum(~ranked)
  recall = np.append(np.append(0.0, tp / n_pos), 1.0)
  precision = np.append(np.append(0.0, tp / (tp + fp)), 0.0)
  for i in range(len(precision) - 2, -1, -1):
    precision[i] = max(precision[i], precision[i + 1])
  changed = [a != b for a, b in zip(recall[1:], recall[:-1])]
  return float(np.sum((recall[1:][changed] - recall[:-1][changed]) * precision[1:][changed]))


def sake_style_precision(label: int, scores: np.ndarray, gallery_labels: np.ndarray,
                         k: int = 100) -> float:
  """SAKE-style P@K of one query: a second argsort."""
  top = min(k, len(scores))
  return float(np.sum((gallery_labels == label)[np.argsort(-scores)][:top]) / top)


def sake_style(q, ql, g, gl, rows):
  """Wall and CPU seconds and (mAP@all, P@100) per query of `rows`; scores = -cdist, as SAKE's
  code."""
  start, cpu_start = time.perf_counter(), time.process_time()
  scores = -distance.cdist(q[rows], g)
  aps = [sake_style_voc_ap(ql[r], s, gl) for r, s in zip(rows, scores)]
  precisions = [sake_style_precision(ql[r], s, gl) for r, s in zip(rows, scores)]
  return (time.perf_counter() - start, time.process_time() - cpu_start, np.array(aps),
          np.array(precisions))


def float64_product_cpu_seconds(q: np.ndarray, g: np.ndarray, block_size: int) -> float:
  """CPU seconds of the (Q, G) float64 product -q g^T in query blocks on one BLAS thread: the
  part of `evaluate`'s work that its exact (float64) ranking cannot do without."""
  g = g.astype(np.float64)
  out = np.empty((block_size, len(g)))
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    start = time.process_time()
    for a in range(0, len(q), block_size):
      block = -q[a:a + block_size].astype(np.float64)
      np.matmul(block, g.T, out=out[:len(block)])
    return time.process_time() - start


def main(argv):
  del argv
  load_before = os.getloadavg()[0]
  quickdraw, sketchy = scaled(QUICKDRAW, _SCALE.value), scaled(SKETCHY, _SCALE.value)
  args = (_SEED.value, _BLOCK_SIZE.value, _THREADS.value)
  qd_walls, qd_cpus, qd_rss, qd = in_fresh_process(run_ours, *quickdraw[1:], *args, 1)
  sk_walls, sk_cpus, sk_rss, sk = in_fresh_process(run_ours, *sketchy[1:], *args,
                                                   _REPEATS.value)

  q, ql, g, gl = random_split(*sketchy[1:4], _SEED.value)
  rows = np.sort(np.random.default_rng(1).choice(
      len(ql), min(_SAKE_QUERIES.value, len(ql)), replace=False))
  sake_wall, sake_cpu, sake_ap, sake_p = sake_style(q, ql, g, gl, rows)
  scale = len(ql) / len(rows)
  sake_wall, sake_cpu = sake_wall * scale, sake_cpu * scale
  product_cpu = float64_product_cpu_seconds(q, g, _BLOCK_SIZE.value)
  ap_diff = np.abs(sake_ap - sk.per_query["map@all"][rows]).max()
  p_diff = np.abs(sake_p - sk.per_query["p@100"][rows]).max()

  gib = 2.0 ** 30
  print(f"{os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after (other processes share the CPUs: wall times grow with "
        f"the load, CPU times much less). block_size={_BLOCK_SIZE.value}, "
        f"threads={_THREADS.value}, D={DIM}, scale={_SCALE.value} (the targets are for "
        f"1).\n")
  print("| case | queries x gallery | metrics | wall (s) | CPU (s) | peak RSS (GiB) |")
  print("|---|---|---|---|---|---|")
  for (name, nq, ng, _, names), walls, cpus, rss, result in (
      (quickdraw, qd_walls, qd_cpus, qd_rss, qd), (sketchy, sk_walls, sk_cpus, sk_rss, sk)):
    values = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    calls = (f"{walls[0]:.2f} first, {statistics.median(walls):.2f} median of {len(walls)}"
             if len(walls) > 1 else f"{walls[0]:.1f}")
    print(f"| {name}, ours | {nq:,} x {ng:,} | {values} | {calls} | "
          f"{statistics.median(cpus):.1f} | {rss / gib:.2f} |")
  print(f"| {sketchy[0]}, SAKE-style, extrapolated from {len(rows)} random queries | "
        f"{sketchy[1]:,} x {sketchy[2]:,} | map@all, p@100 | {sake_wall:.0f} | "
        f"{sake_cpu:.0f} | - |")
  sk_wall, sk_cpu = statistics.median(sk_walls), statistics.median(sk_cpus)
  print(f"\nSpeed-up on {sketchy[0]} (target >= 100x): {sake_wall / sk_wall:.0f}x wall (median "
        f"call; first call {sake_wall / sk_walls[0]:.0f}x); {sake_cpu / sk_cpu:.0f}x in CPU time; "
        f"x {_THREADS.value} threads (SAKE-style runs on one) = "
        f"{_THREADS.value * sake_cpu / sk_cpu:.0f}x, the wall speed-up on {_THREADS.value} idle "
        f"cores with perfect scaling.")
  print(f"Of which the float64 product (needed for the exact ranking; one BLAS thread): "
        f"{product_cpu:.2f} CPU s, {product_cpu / sk_cpu:.0%} of the evaluation: alone it would "
        f"limit the CPU-time speed-up to {sake_cpu / product_cpu:.0f}x "
        f"({_THREADS.value * sake_cpu / product_cpu:.0f}x on {_THREADS.value} idle cores).")
  print(f"Largest |difference| on the {len(rows)} SAKE-style queries: AP {ap_diff:.1e}, P@100 "
        f"{p_diff:.1e} (both rank by float64 distances).")
  print(f"QuickDraw-30 targets: < 60 s wall ({qd_walls[0]:.1f}; CPU / threads = "
        f"{qd_cpus[0] / _THREADS.value:.1f}), < 4 GiB peak RSS ({qd_rss / gib:.2f}).")

if __name__ == "__main__":
  app.run(main)
