"""Retrieval metrics with the semantics of SAKE's evaluation code, computed in query blocks.

Every query ranks the whole gallery by ascending distance; an item is relevant when its label
equals the query's. With tp / fp the cumulative relevant / irrelevant counts down the ranking,
recall = tp / n_pos and precision = tp / (tp + fp). Metric names (`metrics=`):

* `map@all`: interpolated (VOC 2010) AP: every precision is replaced by the largest precision at
  any later rank, then precision x recall-increment is summed where recall changes. For the
  relevance sequence [0, 1, 1] it is 2/3; for [0, 1, 0, 0, 1, 1] 1/2.
* `map@K`: the same on the first K ranks only, with n_pos replaced by min(K, n_pos).
* `p@K`: relevant items among the first min(K, gallery size), divided by that number.
* `map_noninterp@all`, `map_noninterp@K`: non-interpolated AP, the mean precision at the ranks of
  the relevant items (`sklearn.metrics.average_precision_score`: 0.583 and 0.467 on the examples
  above); the @K form sums over relevant items in the first K ranks and divides by min(K, n_pos).
  A named variant for cross-checks; the field reports the interpolated one.

Every metric is a function of the 1-based ranks r_1 < ... < r_n of the n relevant items alone:
precision at the i-th relevant item is i / r_i, and the VOC maximum over later ranks equals the
maximum over later relevant items (a precision falls at every irrelevant item). So the evaluator
only finds the ranks of the relevant items and never sorts indices:

* Distances. `euclidean`: (||g||^2 - c) / 2 - q.g for a constant c (the median over the
  gallery), i.e. half the squared Euclidean distance minus a per-query constant, so the ranking
  is the Euclidean one for any embeddings and the cosine one for L2-normalised embeddings. It is
  the float32 matrix product -q.g plus the float32 centred half-norms (~0 for unit vectors, so
  they cost no resolution), and distances are compared as float32: items whose distances differ
  by less than the product's rounding (~1e-6 relative at D = 512) may be ordered differently
  than by SAKE's float64 `cdist`, or tie; on random Sketchy-size data AP moves by < 2e-6.
  `hamming`: the number of differing bits of {0, 1} codes (`hashing.py`), exact.
* Ties: equal distances are ordered by gallery index (a stable sort). SAKE's code uses an
  unstable sort, whose tie order is arbitrary. Ties only matter between a relevant and an
  irrelevant item; they happen constantly with binary codes, and with float32 distances a
  QuickDraw-size row of random unit vectors has one or two.
* Real-valued distances: each row is sorted once by value (numpy's vectorised float32 sort; no
  index sort), with the last mantissa bit of every key replaced by the item's relevance, so the
  ranks of the relevant items are the places of the set bits. Only items within one unit in the
  last place of each other can come out misordered by that; where such a "group" mixes relevant
  and irrelevant items (for random unit vectors 0.3 per row at Sketchy size, 2.5 at QuickDraw
  size), its items are re-ordered exactly by (distance, gallery index) from the unsorted
  distances. So the ranking is exactly that of the float32 distances, ties by index. Hamming
  distances are small integers with ties everywhere: each row is stable-argsorted (a
  linear-time radix sort for 8- and 16-bit keys).
* Work: queries are sorted by class; each block of `block_size` queries is one matrix product
  against the gallery (which BLAS packs once per product), whose rows then get their
  half-norms added and are ranked in chunks of about 1 MiB (kept in cache), one class at a
  time. Blocks run on `num_threads` threads, staggered (`block_bounds`), each with a
  single-threaded BLAS, set process-wide while `evaluate` runs; numpy releases the GIL in the
  product and the sorts. Memory is O(num_threads x block_size x gallery), never the full
  query x gallery matrix. At Sketchy-25 size (15,229 x 17,101, D = 512) on 2 cores: ~1.6 s,
  two thirds of it in the products (at the core's float32 peak) and the sorts.

Averaging: `metrics` are means over queries (the standard); `class_balanced` are means of
per-class means (DSN's), equal to the former when classes have equal query counts. A query whose
class has no gallery item has no defined AP; it is excluded from every mean (its per-query values
are NaN) and counted in `n_excluded`. (SAKE's code would count its P@K as 0; no standard split has
such a query.)
"""
from collections.abc import Sequence
import concurrent.futures
import dataclasses
import os
import re
import threading
from typing import Any, NamedTuple

import numpy as np
import threadpoolctl

from zsbir_jax.evaluation import hashing

DEFAULT_METRICS = ("map@all", "p@100", "map@200", "p@200")
# More threads than this gain nothing: on a 16-core host, 4 and 8 threads take half the time of 2
# at QuickDraw-30 size and 16 take longer (the rankings' Python-level work serialises on the GIL).
MAX_DEFAULT_THREADS = 8
DISTANCES = ("euclidean", "hamming")
_METRIC_RE = re.compile(r"^(map|map_noninterp|p)@(all|[1-9][0-9]*)$")


class MetricSpec(NamedTuple):
  """A parsed metric name: `kind` in {map, map_noninterp, p}; `k` None for @all."""
  name: str
  kind: str
  k: int | None


def parse_metric(name: str) -> MetricSpec:
  """Parses `map@all`, `map@200`, `p@100`, `map_noninterp@all`, ...; raises ValueError otherwise."""
  match = _METRIC_RE.match(name)
  if match is None:
    raise ValueError(f"Unknown metric {name!r}: expected map@all, map@K, p@K, "
                     "map_noninterp@all or map_noninterp@K with K a positive integer.")
  kind, k = match.groups()
  if kind == "p" and k == "all":
    raise ValueError(f"Unknown metric {name!r}: P@K needs an integer K.")
  return MetricSpec(name, kind, None if k == "all" else int(k))


def _reverse_cummax(x: np.ndarray) -> np.ndarray:
  """Maximum over each position and all later ones along the last axis."""
  return np.maximum.accumulate(x[..., ::-1], axis=-1)[..., ::-1]


def metrics_from_ranks(ranks: np.ndarray, n_gallery: int, specs: Sequence[MetricSpec],
                       pr_points: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Per-query metrics and interpolated precision-recall points from the relevant items' ranks.

  Args:
    ranks: (B, n_pos) int, 1-based ranks of each query's relevant items, ascending along a row;
      n_pos >= 1.
    n_gallery: gallery size.
    specs: the metrics to compute.
    pr_points: P >= 2 recall levels j / (P - 1), j = 0..P-1.

  Returns:
    name -> (B,) float64, and (B, P) interpolated precision (the largest precision at any rank
    whose recall reaches the level) at each level.
  """
  n_pos = ranks.shape[1]
  precision = np.arange(1, n_pos + 1, dtype=np.float64) / ranks
  interpolated = _reverse_cummax(precision)
  out = {}
  for spec in specs:
    # Ranks ascend, so the relevant items within the first K ranks are among the first K.
    top = ranks[:, :spec.k]
    if spec.kind == "p":
      out[spec.name] = (top <= spec.k).sum(axis=1) / min(spec.k, n_gallery)
    elif spec.k is None:
      out[spec.name] = (interpolated if spec.kind == "map" else precision).sum(axis=1) / n_pos
    else:
      prec = np.where(top <= spec.k, precision[:, :spec.k], 0.0)
      if spec.kind == "map":
        prec = _reverse_cummax(prec)
      out[spec.name] = prec.sum(axis=1) / min(spec.k, n_pos)
  # Level j is first reached at the ceil(j n_pos / (P - 1))-th relevant item (the first, j = 0).
  j = np.arange(pr_points)
  first = np.maximum(-(-j * n_pos // (pr_points - 1)), 1) - 1
  return out, interpolated[:, first]


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Result of `evaluate`.

  Attributes:
    metrics: name -> mean over the included queries (the standard averaging).
    class_balanced: name -> mean over classes of the per-class means (DSN's averaging).
    per_class: name -> (C,) per-class means over included queries, NaN for a class whose
      queries are all excluded.
    classes: (C,) the query classes, sorted; indexes `per_class`.
    per_query: name -> (Q,) values, NaN for excluded queries.
    pr_recall: (P,) recall levels; pr_precision: (P,) mean interpolated precision over the
      included queries at each level.
    n_queries, n_gallery: sizes; n_excluded: queries without any relevant gallery item.
    distance: `euclidean` or `hamming`.
  """
  metrics: dict[str, float]
  class_balanced: dict[str, float]
  per_class: dict[str, np.ndarray]
  classes: np.ndarray
  per_query: dict[str, np.ndarray]
  pr_recall: np.ndarray
  pr_precision: np.ndarray
  n_queries: int
  n_gallery: int
  n_excluded: int
  distance: str

  def to_json(self) -> dict[str, Any]:
    """JSON-serialisable summary (no per-query values); NaN becomes None."""
    def number(x: float) -> float | None:
      return None if np.isnan(x) else float(x)

    return {
        "distance": self.distance,
        "ap_variant": "interpolated VOC 2010 (map@*); non-interpolated (map_noninterp@*)",
        "n_queries": self.n_queries,
        "n_gallery": self.n_gallery,
        "n_excluded": self.n_excluded,
        "metrics": {name: number(v) for name, v in self.metrics.items()},
        "class_balanced": {name: number(v) for name, v in self.class_balanced.items()},
        "per_class": {name: {int(c): number(v) for c, v in zip(self.classes, values)}
                      for name, values in self.per_class.items()},
        "pr_curve": {"recall": self.pr_recall.tolist(),
                     "precision": [number(v) for v in self.pr_precision]},
    }


def _stable_ranks(distances: np.ndarray, relevant: np.ndarray) -> np.ndarray:
  """(B, n_pos) ranks of the relevant items under a stable sort of (B, G) `distances`.

  `relevant`: (G,) bool, in the gallery order of the columns of `distances`.
  """
  b, g = distances.shape
  at = _flat_nonzero(relevant[np.argsort(distances, axis=1, kind="stable")].reshape(-1))
  return at.reshape(b, -1) - (np.arange(b) * g - 1)[:, None]


def _flat_nonzero(flags: np.ndarray) -> np.ndarray:
  """`np.flatnonzero` of a 1-D bool array, ~2x faster where under 10% of it is True.

  numpy's nonzero scans sparse bool arrays with one memchr call per True entry; packed eight to
  a byte, the flags are dense enough for its branch-free loop, run twice on 1/8 and ~3/8 of the
  length.
  """
  packed = np.packbits(flags, bitorder="little")
  byte_at = np.flatnonzero(packed != 0)
  bit_at = np.flatnonzero(np.unpackbits(packed[byte_at], bitorder="little").view(bool))
  return (byte_at[bit_at >> 3] << 3) | (bit_at & 7)


def _flagged_ranks(distances: np.ndarray, relevant: np.ndarray, keys: np.ndarray,
                   flags: np.ndarray) -> np.ndarray:
  """(B, n_pos) ranks of the relevant items among (B, G) float32 `distances`.

  Every row is sorted once by value, with the last mantissa bit of each key replaced by the
  item's relevance (`relevant`: (G,) uint32, 1 for a relevant item, else 0), so the relevant
  items' places are read off the sorted keys without an index sort. Keys equal but for that bit
  (a "group": distances within one unit in the last place) may come out in the wrong order; a
  group holding relevant and irrelevant items is re-ordered exactly, by (distance, gallery
  index), from `distances`. `keys` (float32, at least B x G + 1 elements) and `flags` (bool, at
  least (B, G)) are buffers, reused so that big blocks are not page-faulted in afresh. Equal
  distances must have equal bits, i.e. no -0.0 (`evaluate`'s distances never are: a sum with a
  term that is not -0.0, the centred half-norm, is never -0.0).
  """
  b, g = distances.shape
  bits = distances.view(np.uint32)
  # One spare key after the block: the right neighbour of the last one.
  flat = keys.reshape(-1)[:b * g + 1].view(np.uint32)
  keys = flat[:b * g].reshape(b, g)
  np.bitwise_and(bits, np.uint32(0xFFFFFFFE), out=keys)
  np.bitwise_or(keys, relevant, out=keys)
  keys.view(np.float32).sort(axis=1)
  np.bitwise_and(keys, np.uint32(1), out=flags[:b], casting="unsafe")
  at = _flat_nonzero(flags[:b].reshape(-1))
  ranks = at.reshape(b, -1) - (np.arange(b) * g - 1)[:, None]

  # A relevant key k (last bit 1) next to the irrelevant key k - 1 marks a mixed group.
  # Neighbours across row ends (the spare key, and flat[-1] for the first) only cause a
  # harmless extra check.
  twin = flat[at] - np.uint32(1)
  mixed = (flat[at - 1] == twin) | (flat[at + 1] == twin)
  # Groups are rare and small (~2 members): their ordering is plain Python.
  for r, key in set(zip((at[mixed] // g).tolist(), twin[mixed].tolist())):
    members = np.flatnonzero((bits[r] >> 1) == key >> 1).tolist()  # Gallery order.
    exact = sorted(zip(distances[r, members].tolist(), members, relevant[members].tolist()))
    # The group's smallest key, either flag (for a negative float, the larger bit pattern):
    # its sorted places start there.
    lowest = np.uint32(key if key < 0x80000000 else key | 1).view(np.float32)
    start = int(keys[r].view(np.float32).searchsorted(lowest))
    places = [start + 1 + i for i, (_, _, rel) in enumerate(exact) if rel]
    first = int(ranks[r].searchsorted(start + 1))
    ranks[r, first:first + len(places)] = places
  return ranks


def block_bounds(n: int, block_size: int, num_threads: int) -> list[int]:
  """Bounds 0 = b_0 < b_1 < ... = n of the query blocks that `num_threads` threads take in turn.

  Blocks have equal size (at most block_size), as many as a multiple of the threads, so that no
  thread works alone at the end; but the first num_threads - 1 are cut to 1/T, 2/T, ... of that
  size to stagger the threads, so that one ranks while the others multiply. In lockstep the
  rankings, many short numpy calls, contend for the GIL (~5% slower at Sketchy size).
  """
  n_blocks = -(-n // block_size)
  n_blocks = -(-n_blocks // num_threads) * num_threads
  size = max(1, -(-n // max(n_blocks, 1)))
  bounds = [0]
  for k in range(1, num_threads):
    bounds.append(bounds[-1] + size * k // num_threads)
  bounds.extend(range(bounds[-1] + size, n, size))
  return sorted({min(b, n) for b in [*bounds, n]})


def evaluate(query_emb: np.ndarray, query_labels: np.ndarray, gallery_emb: np.ndarray,
             gallery_labels: np.ndarray, *, metrics: Sequence[str] = DEFAULT_METRICS,
             distance: str = "euclidean", block_size: int = 1024, num_threads: int | None = None,
             pr_points: int = 11) -> Evaluation:
  """Every query against the whole gallery, all requested metrics in one blocked pass.

  Args:
    query_emb: (Q, D) float embeddings (`euclidean`) or (Q, n_bits) {0, 1} codes (`hamming`).
    query_labels: (Q,) int class labels.
    gallery_emb: (G, D) or (G, n_bits), like `query_emb`.
    gallery_labels: (G,) int class labels.
    metrics: metric names (module docstring).
    distance: `euclidean` or `hamming`.
    block_size: at most this many queries per block (one matrix product); `block_bounds`
      says how the queries are cut. Peak memory is about num_threads x block_size x G x 4 bytes
      (5 for hamming) on top of the inputs.
    num_threads: worker threads; None: the CPUs this process may run on, at most
      `MAX_DEFAULT_THREADS`.
    pr_points: recall levels of the mean interpolated precision-recall curve (>= 2).

  Returns:
    An `Evaluation`.
  """
  specs = [parse_metric(m) for m in metrics]
  if len({s.name for s in specs}) != len(specs):
    raise ValueError(f"Duplicate metric names in {list(metrics)}.")
  if distance not in DISTANCES:
    raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.")
  if num_threads is None:
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    num_threads = min(cpus, MAX_DEFAULT_THREADS)
  if block_size < 1 or num_threads < 1 or pr_points < 2:
    raise ValueError(f"Need block_size >= 1, num_threads >= 1, pr_points >= 2; got "
                     f"{block_size}, {num_threads}, {pr_points}.")
  query_labels = np.asarray(query_labels, np.int64)
  gallery_labels = np.asarray(gallery_labels, np.int64)
  query_emb, gallery_emb = np.asarray(query_emb), np.asarray(gallery_emb)
  if (query_emb.ndim != 2 or gallery_emb.ndim != 2
      or query_emb.shape[1] != gallery_emb.shape[1]
      or query_labels.shape != query_emb.shape[:1]
      or gallery_labels.shape != gallery_emb.shape[:1]):
    raise ValueError(f"Shape mismatch: query_emb {query_emb.shape}, query_labels "
                     f"{query_labels.shape}, gallery_emb {gallery_emb.shape}, gallery_labels "
                     f"{gallery_labels.shape}; expected (Q, D), (Q,), (G, D), (G,).")
  n_query, n_gallery = len(query_labels), len(gallery_labels)
  if n_gallery == 0:
    raise ValueError("The gallery is empty.")
  for name, emb in (("query_emb", query_emb), ("gallery_emb", gallery_emb)):
    if not np.isfinite(emb).all():
      raise ValueError(f"{name} has non-finite values.")

  if distance == "euclidean":
    # (||g||^2 - c) / 2 - q.g: the Euclidean order; centring ||g||^2 keeps float32 resolution
    # at that of q.g for (near) unit vectors. The half-norms are added to the product per chunk
    # of rows, in cache: a (D + 1)-deep product costs ~9% more than a D = 512 one.
    gallery32 = np.ascontiguousarray(gallery_emb, np.float32)
    half_sq = 0.5 * np.einsum("ij,ij->i", gallery_emb, gallery_emb, dtype=np.float64)
    half_sq = (half_sq - np.median(half_sq)).astype(np.float32)
  else:
    q_pm = hashing.to_signs(query_emb)
    g_pm = hashing.to_signs(gallery_emb)

  buffers = threading.local()
  # Rows ranked together: about 1 MiB of float32 distances, so that they stay in cache.
  chunk = max(1, 2**20 // (4 * n_gallery))

  def block(rows: np.ndarray) -> list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """Metrics and PR points of label-sorted query `rows`, per run of one class."""
    if distance == "euclidean":
      if not hasattr(buffers, "products"):
        buffers.queries = np.empty((block_size, query_emb.shape[1]), np.float32)
        buffers.products = np.empty((block_size, n_gallery), np.float32)
        buffers.keys = np.empty(chunk * n_gallery + 1, np.float32)
        buffers.flags = np.empty((chunk, n_gallery), bool)
      neg_queries = buffers.queries[:len(rows)]
      np.negative(query_emb[rows], out=neg_queries, casting="same_kind")
      products = np.matmul(neg_queries, gallery32.T, out=buffers.products[:len(rows)])
    else:
      distances = hashing.hamming_from_signs(q_pm[rows], g_pm)
    labels = query_labels[rows]
    runs = np.flatnonzero(np.diff(labels)) + 1
    out = []
    for start, stop in zip([0, *runs.tolist()], [*runs.tolist(), len(rows)]):
      relevant = gallery_labels == labels[start]
      if distance == "euclidean":
        relevant_bit = relevant.astype(np.uint32)
        parts = []
        for i in range(start, stop, chunk):
          distances = products[i:min(i + chunk, stop)]
          distances += half_sq  # In place, in cache: the distances of these rows.
          parts.append(_flagged_ranks(distances, relevant_bit, buffers.keys, buffers.flags))
        ranks = np.concatenate(parts)
      else:
        ranks = np.concatenate([_stable_ranks(distances[i:min(i + chunk, stop)], relevant)
                                for i in range(start, stop, chunk)])
      out.append((rows[start:stop], *metrics_from_ranks(ranks, n_gallery, specs, pr_points)))
    return out

  per_query = {s.name: np.full(n_query, np.nan) for s in specs}
  pr_sum = np.zeros(pr_points)
  classes = np.unique(query_labels)
  included = np.isin(query_labels, gallery_labels)
  # Blocks of label-sorted queries: one big matrix product (the gallery is packed once per
  # product), then rows of one class at a time.
  order = np.flatnonzero(included)[np.argsort(query_labels[included], kind="stable")]
  # One BLAS thread per worker: BLAS threads on top of the workers oversubscribe the cores, and
  # OpenBLAS's spin-waiting threads then slow everything down two- to threefold.
  with (threadpoolctl.threadpool_limits(1, user_api="blas"),
        concurrent.futures.ThreadPoolExecutor(num_threads) as pool):
    bounds = block_bounds(len(order), block_size, num_threads)
    jobs = [pool.submit(block, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    for job in jobs:
      for rows, values, pr in job.result():
        pr_sum += pr.sum(axis=0)
        for name, v in values.items():
          per_query[name][rows] = v

  n_included = int(included.sum())
  class_of = np.searchsorted(classes, query_labels)
  counts = np.bincount(class_of[included], minlength=len(classes))
  per_class = {}
  for name, values in per_query.items():
    sums = np.bincount(class_of[included], weights=values[included], minlength=len(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
      per_class[name] = np.where(counts > 0, sums / counts, np.nan)

  def mean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")

  return Evaluation(
      metrics={name: mean(v) for name, v in per_query.items()},
      class_balanced={name: mean(v) for name, v in per_class.items()},
      per_class=per_class,
      classes=classes,
      per_query=per_query,
      pr_recall=np.linspace(0.0, 1.0, pr_points),
      pr_precision=pr_sum / n_included if n_included else np.full(pr_points, np.nan),
      n_queries=n_query,
      n_gallery=n_gallery,
      n_excluded=n_query - n_included,
      distance=distance,
  )
