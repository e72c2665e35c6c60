"""Retrieval metrics with the semantics of SAKE's evaluation code, computed in query blocks.

Every query ranks the whole gallery by ascending distance; an item is relevant when its label
equals the query's. With tp / fp the cumulative relevant / irrelevant counts down the ranking,
recall = tp / n_pos and precision = tp / (tp + fp). Metric names (`metrics=`):

* `map@all`: interpolated (VOC 2010) AP: every precision is replaced by the largest precision at
  any later rank, then precision x recall-increment is summed where recall changes. For the
  relevance sequence [0, 1, 1] it is 2/3; for [0, 1, 0, 0, 1, 1] 1/2.
* `map@K`: the same on the first K ranks only. Two denominators exist in the field
  (`map_at_k=`): `sake` (SAKE's, the default) divides by min(K, n_pos); `doodle`
  (Doodle-to-Search's) by the relevant items found in the first K ranks (0 when there are none).
* `p@K`: relevant items among the first min(K, gallery size), divided by that number.
* `map_noninterp@all`, `map_noninterp@K`: non-interpolated AP, the mean precision at the ranks of
  the relevant items (`sklearn.metrics.average_precision_score`: 0.583 and 0.467 on the examples
  above); the @K form sums over relevant items in the first K ranks, with the same denominators.
  A named variant for cross-checks; the field reports the interpolated one.

Every metric is a function of the 1-based ranks r_1 < ... < r_n of the n relevant items alone:
precision at the i-th relevant item is i / r_i, and the VOC maximum over later ranks equals the
maximum over later relevant items (a precision falls at every irrelevant item). So the evaluator
only finds the ranks of the relevant items and never sorts indices.

Ranking, `euclidean`: exactly SAKE's, the order of the float64 distances that scipy's `cdist`
computes, equal distances by gallery index (a stable sort; SAKE's unstable sort leaves their order
arbitrary), whatever the block size or thread count (but for the one case named below). Rows are
ranked by d = (||g||^2 - c) / 2 - q.g for a constant c (the median over the gallery): half the
squared distance minus a per-query constant, the same order. d is a float64 matrix product: its
rounding (~1e-14 relative at D = 512) is far below the float32 resolution the sort works at.
(A float32 product would not do: its rigorous error bound, D x 2^-24 ~ 3e-5 of |q||g| at
D = 512, exceeds the spacing of a dense gallery's distances, so most items would need settling.)
d is rounded to float32 sort keys. Each row is sorted once by value (numpy's vectorised float32
sort; no index sort), with the last mantissa bit of every key replaced by the item's relevance,
so the ranks of the relevant items are the places of the set bits. Items whose keys are equal
but for that bit (a "group", about two float32 units in the last place wide) can come out
misordered; where a group mixes relevant and irrelevant items (for random unit vectors 0.3 per
row at Sketchy size, 2.5 at QuickDraw size) its items are re-ordered by their float64 Euclidean
distances computed pair by pair, as `cdist` does, then by gallery index. Identical gallery
vectors thus tie exactly; so that the product (whose rounding depends on an item's place in the
BLAS kernel) cannot split them into two groups, it is computed for the distinct gallery rows
only (also saving the repeats' work: Sketchy's standard galleries list 2,499 photos twice) and
each item takes its row's column. What is not settled: distinct vectors whose float64
distances agree to the product's rounding and fall on two sides of a float32 rounding boundary
(random data has none).

`hamming`: the number of differing bits of {0, 1} codes (`hashing.py`), exact small integers
with ties everywhere: each row is stable-argsorted (a linear-time radix sort for 8- and 16-bit
keys).

Work: queries are sorted by class; each block of `block_size` queries is one matrix product
against the gallery, whose rows are then ranked in chunks of about 1 MiB (kept in cache), one
class at a time. Blocks run on `num_threads` threads, staggered (`block_bounds`), each with a
single-threaded BLAS, set process-wide while `evaluate` runs; numpy releases the GIL in the
product and the sorts. Memory is O(num_threads x block_size x gallery), never the full
query x gallery matrix.

Queries whose class has no gallery item (`no_relevant=`): `exclude` (the default) leaves them out
of every mean (per-query values NaN); `sake` counts them as SAKE's code does, P@K = 0 and AP NaN
(dropped from the AP means). Either way they are counted in `n_without_relevant`. No standard
split has such a query.

Averaging: `metrics` are means over queries (the standard); `class_balanced` are means of
per-class means (DSN's), equal to the former when classes have equal query counts.
"""
from collections.abc import Callable, Sequence
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
NO_RELEVANT = {"exclude": "excluded from every mean",
               "sake": "SAKE's: P@K = 0, AP undefined and dropped from the AP means"}
MAP_AT_K = {"sake": "SAKE's: AP on the first K ranks divided by min(K, n_pos)",
            "doodle": "Doodle-to-Search's: AP on the first K ranks divided by the relevant "
                      "items found there"}
_METRIC_RE = re.compile(r"^(map|map_noninterp|p)@(all|[1-9][0-9]*)$")


class NonFiniteEmbeddingsError(ValueError):
  """An embedding has a NaN or infinite value: no distance to rank by."""


class EmptyGalleryError(ValueError):
  """The gallery has no item: there is nothing to rank."""


class NoRelevantItemsError(ValueError):
  """No query has a relevant gallery item: every AP is undefined."""


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
                       pr_points: int, map_at_k: str = "sake"
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Per-query metrics and interpolated precision-recall points from the relevant items' ranks.

  Args:
    ranks: (B, n_pos) int, 1-based ranks of each query's relevant items, ascending along a row;
      n_pos >= 1.
    n_gallery: gallery size.
    specs: the metrics to compute.
    pr_points: P >= 2 recall levels j / (P - 1), j = 0..P-1.
    map_at_k: denominator of AP@K, a key of `MAP_AT_K`.

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
      found = top <= spec.k
      prec = np.where(found, precision[:, :spec.k], 0.0)
      if spec.kind == "map":
        prec = _reverse_cummax(prec)
      if map_at_k == "sake":
        out[spec.name] = prec.sum(axis=1) / min(spec.k, n_pos)
      else:  # No relevant item in the first K: 0, not 0 / 0.
        out[spec.name] = prec.sum(axis=1) / np.maximum(found.sum(axis=1), 1)
  # Level j is first reached at the ceil(j n_pos / (P - 1))-th relevant item (the first, j = 0).
  j = np.arange(pr_points)
  first = np.maximum(-(-j * n_pos // (pr_points - 1)), 1) - 1
  return out, interpolated[:, first]


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Result of `evaluate`.

  Attributes:
    metrics: name -> mean over the queries with a value (the standard averaging).
    class_balanced: name -> mean over classes of the per-class means (DSN's averaging).
    per_class: name -> (C,) per-class means over the queries with a value, NaN for none.
    classes: (C,) the query classes, sorted; indexes `per_class`.
    per_query: name -> (Q,) values, NaN where undefined (`no_relevant`).
    pr_recall: (P,) recall levels; pr_precision: (P,) mean interpolated precision over the
      queries with a relevant item at each level.
    n_queries, n_gallery: sizes; n_without_relevant: queries without any relevant gallery item.
    distance: `euclidean` or `hamming`.
    no_relevant: the convention for those queries, a key of `NO_RELEVANT`.
    map_at_k: the AP@K denominator, a key of `MAP_AT_K`.
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
  n_without_relevant: int
  distance: str
  no_relevant: str
  map_at_k: str

  def to_json(self) -> dict[str, Any]:
    """JSON-serialisable summary (no per-query values); NaN becomes None."""
    def number(x: float) -> float | None:
      return None if np.isnan(x) else float(x)

    return {
        "distance": self.distance,
        "ap_variant": "interpolated VOC 2010 (map@*); non-interpolated (map_noninterp@*)",
        "map_at_k": f"{self.map_at_k}: {MAP_AT_K[self.map_at_k]}",
        "no_relevant": f"{self.no_relevant}: {NO_RELEVANT[self.no_relevant]}",
        "n_queries": self.n_queries,
        "n_gallery": self.n_gallery,
        "n_without_relevant": self.n_without_relevant,
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
                   flags: np.ndarray, exact: Callable[[int, list[int]], np.ndarray]
                   ) -> np.ndarray:
  """(B, n_pos) ranks of the relevant items in the exact order of B rows of distances.

  Every row of the float32 `distances` (B, G), a monotone rounding of the exact ones, is sorted
  once by value, with the last mantissa bit of each key replaced by the item's relevance
  (`relevant`: (G,) uint32, 1 for a relevant item, else 0), so the relevant items' places are
  read off the sorted keys without an index sort. Keys equal but for that bit (a "group") may
  come out in the wrong order; a group holding relevant and irrelevant items is re-ordered by
  (exact(row, members), gallery index), `exact` giving the float64 distances of a row's items.
  `keys` (float32, at least B x G + 1 elements) and `flags` (bool, at least (B, G)) are buffers,
  reused so that big blocks are not page-faulted in afresh. Equal distances must have equal
  bits, i.e. no -0.0 (`evaluate`'s never are: a sum with a term that is not -0.0, the centred
  half-norm, is never -0.0).
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
    exact_order = sorted(zip(exact(r, members).tolist(), members, relevant[members].tolist()))
    # The group's smallest key, either flag (for a negative float, the larger bit pattern):
    # its sorted places start there.
    lowest = np.uint32(key if key < 0x80000000 else key | 1).view(np.float32)
    start = int(keys[r].view(np.float32).searchsorted(lowest))
    places = [start + 1 + i for i, (_, _, rel) in enumerate(exact_order) if rel]
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


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(U,) ascending first occurrences of the distinct rows of (G, D) float64 `x`, and (G,) the
  place of each row's value among them: x == x[first][inverse].

  Rows are matched by a 64-bit hash of their bits (an exact integer sum, the same for equal
  rows), then checked for equality.
  """
  bits = (x + 0.0).view(np.uint64)  # + 0.0: -0.0 -> 0.0, so equal rows have equal bits.
  odd = np.random.default_rng(0).integers(0, 2**63, x.shape[1], np.uint64) * 2 + 1
  hashes = np.einsum("ij,j->i", bits, odd)  # Exact modulo 2^64.
  _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
  originals = first[inverse]
  originals = np.where((x == x[originals]).all(axis=1), originals, np.arange(len(x)))
  first = np.unique(originals)
  return first, np.searchsorted(first, originals)


@dataclasses.dataclass(frozen=True)
class _Problem:
  """Everything a query block needs, prepared once.

  Attributes:
    query, gallery: (Q, D) embeddings and their (G, D) float64 gallery (`euclidean`), or
      float32 +-1 codes.
    distinct, expand: (U, D) float64 distinct gallery rows and (G,) each item's row among them,
      None if all rows are distinct (`euclidean`).
    query_labels, gallery_labels: (Q,), (G,) int64.
    half_sq: (G,) float64 (||g||^2 - c) / 2, c the median of ||g||^2 (`euclidean`).
    specs, pr_points, map_at_k, block_size: as `evaluate`'s arguments.
    buffers: per-thread arrays, reused from block to block.
  """
  distance: str
  query: np.ndarray
  gallery: np.ndarray
  query_labels: np.ndarray
  gallery_labels: np.ndarray
  half_sq: np.ndarray | None
  distinct: np.ndarray | None
  expand: np.ndarray | None
  specs: tuple[MetricSpec, ...]
  pr_points: int
  map_at_k: str
  block_size: int
  buffers: threading.local = dataclasses.field(default_factory=threading.local)

  @property
  def chunk(self) -> int:
    """Rows ranked together: about 1 MiB of float32 keys, so that they stay in cache."""
    return max(1, 2**20 // (4 * len(self.gallery)))


def _validated(query_emb, query_labels, gallery_emb, gallery_labels):
  """The inputs as arrays, with named errors for shapes, an empty gallery and non-finite values."""
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
  if len(gallery_labels) == 0:
    raise EmptyGalleryError("The gallery is empty.")
  for name, emb in (("query_emb", query_emb), ("gallery_emb", gallery_emb)):
    if not np.isfinite(emb).all():
      bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
      raise NonFiniteEmbeddingsError(f"{name} has non-finite values in {len(bad)} rows "
                                     f"(first: {bad[:5].tolist()}).")
  return query_emb, query_labels, gallery_emb, gallery_labels


def _prepare(distance, query_emb, query_labels, gallery_emb, gallery_labels, specs, pr_points,
             map_at_k, block_size) -> _Problem:
  """The `_Problem`: float64 embeddings and centred half-norms, or +-1 codes."""
  if distance == "hamming":
    return _Problem(distance, hashing.to_signs(query_emb), hashing.to_signs(gallery_emb),
                    query_labels, gallery_labels, None, None, None, specs, pr_points, map_at_k,
                    block_size)
  gallery = np.ascontiguousarray(gallery_emb, np.float64)
  # Centring ||g||^2 keeps the float32 keys' resolution at that of q.g for (near) unit vectors.
  half_sq = 0.5 * np.einsum("ij,ij->i", gallery, gallery)
  half_sq -= np.median(half_sq)
  first, expand = _distinct_rows(gallery)
  distinct = (None, None) if len(first) == len(gallery) else (gallery[first], expand)
  return _Problem(distance, query_emb, gallery, query_labels, gallery_labels, half_sq, *distinct,
                  specs, pr_points, map_at_k, block_size)


def _products(problem: _Problem, rows: np.ndarray) -> np.ndarray:
  """(B, U) float64 -q.g of the query `rows` and the U distinct gallery rows."""
  buffers = problem.buffers
  gallery = problem.gallery if problem.distinct is None else problem.distinct
  if not hasattr(buffers, "products"):
    d, g = problem.gallery.shape[1], len(problem.gallery)
    buffers.queries = np.empty((problem.block_size, d))
    buffers.products = np.empty((problem.block_size, len(gallery)))
    if problem.expand is not None:
      buffers.expanded = np.empty((problem.chunk, g))
    buffers.rounded = np.empty((problem.chunk, g), np.float32)
    buffers.keys = np.empty(problem.chunk * g + 1, np.float32)
    buffers.flags = np.empty((problem.chunk, g), bool)
  neg_queries = np.negative(problem.query[rows], out=buffers.queries[:len(rows)])
  return np.matmul(neg_queries, gallery.T, out=buffers.products[:len(rows)])


def _exact_distances(problem: _Problem, query: int, members: list[int]) -> np.ndarray:
  """Float64 Euclidean distances of one query to gallery `members`, pair by pair as `cdist`
  (no BLAS kernel: equal vectors get equal values)."""
  diff = problem.query[query] - problem.gallery[members]
  return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _euclidean_ranks(problem: _Problem, rows: np.ndarray, products: np.ndarray,
                     relevant: np.ndarray) -> np.ndarray:
  """(B, n_pos) ranks of the relevant items for query `rows` of one class, from their (B, U)
  float64 `products` (-q.g with the distinct gallery rows)."""
  buffers, relevant_bit = problem.buffers, relevant.astype(np.uint32)
  parts = []
  for i in range(0, len(rows), problem.chunk):
    products_i = products[i:i + problem.chunk]
    if problem.expand is not None:  # One column per gallery item.
      products_i = np.take(products_i, problem.expand, axis=1,
                           out=buffers.expanded[:len(products_i)])
    # d = (||g||^2 - c) / 2 - q.g, rounded once to float32: a monotone rounding.
    rounded = np.add(products_i, problem.half_sq, casting="same_kind",
                     out=buffers.rounded[:len(products_i)])
    chunk_rows = rows[i:i + problem.chunk]
    parts.append(_flagged_ranks(
        rounded, relevant_bit, buffers.keys, buffers.flags,
        lambda r, members, rows=chunk_rows: _exact_distances(problem, rows[r], members)))
  return np.concatenate(parts)


def _hamming_ranks(problem: _Problem, rows: np.ndarray, relevant: np.ndarray) -> np.ndarray:
  """(B, n_pos) ranks of the relevant items for query `rows` of one class."""
  return np.concatenate([
      _stable_ranks(hashing.hamming_from_signs(problem.query[rows[i:i + problem.chunk]],
                                               problem.gallery), relevant)
      for i in range(0, len(rows), problem.chunk)])


def _class_runs(labels: np.ndarray) -> list[tuple[int, int]]:
  """(start, stop) of the runs of equal values of sorted `labels`."""
  cuts = (np.flatnonzero(np.diff(labels)) + 1).tolist()
  return list(zip([0, *cuts], [*cuts, len(labels)]))


def _evaluate_block(problem: _Problem, rows: np.ndarray
                    ) -> list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
  """Metrics and PR points of label-sorted query `rows`, per run of one class."""
  if problem.distance == "euclidean":
    products = _products(problem, rows)
  labels = problem.query_labels[rows]
  out = []
  for start, stop in _class_runs(labels):
    relevant = problem.gallery_labels == labels[start]
    if problem.distance == "euclidean":
      ranks = _euclidean_ranks(problem, rows[start:stop], products[start:stop], relevant)
    else:
      ranks = _hamming_ranks(problem, rows[start:stop], relevant)
    out.append((rows[start:stop], *metrics_from_ranks(
        ranks, len(problem.gallery), problem.specs, problem.pr_points, problem.map_at_k)))
  return out


def _per_query(problem: _Problem, order: np.ndarray, num_threads: int
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """name -> (Q,) values and (Q, P) PR points, NaN outside the queries `order`."""
  per_query = {s.name: np.full(len(problem.query), np.nan) for s in problem.specs}
  pr = np.full((len(problem.query), problem.pr_points), np.nan)
  # One BLAS thread per worker: BLAS threads on top of the workers oversubscribe the cores, and
  # OpenBLAS's spin-waiting threads then slow everything down two- to threefold.
  with (threadpoolctl.threadpool_limits(1, user_api="blas"),
        concurrent.futures.ThreadPoolExecutor(num_threads) as pool):
    bounds = block_bounds(len(order), problem.block_size, num_threads)
    jobs = [pool.submit(_evaluate_block, problem, order[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])]
    for job in jobs:
      for rows, values, points in job.result():
        pr[rows] = points
        for name, v in values.items():
          per_query[name][rows] = v
  return per_query, pr


def _nan_mean(x: np.ndarray) -> float:
  """Mean of the non-NaN values; NaN if there are none."""
  x = x[~np.isnan(x)]
  return float(x.mean()) if len(x) else float("nan")


def _per_class(per_query: dict[str, np.ndarray], labels: np.ndarray, classes: np.ndarray
               ) -> dict[str, np.ndarray]:
  """name -> (C,) mean over each class's non-NaN values, NaN for a class without any."""
  class_of = np.searchsorted(classes, labels)
  out = {}
  for name, values in per_query.items():
    valid = ~np.isnan(values)
    counts = np.bincount(class_of[valid], minlength=len(classes))
    sums = np.bincount(class_of[valid], weights=values[valid], minlength=len(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
      out[name] = np.where(counts > 0, sums / counts, np.nan)
  return out


def _default_threads() -> int:
  """The CPUs this process may run on, at most `MAX_DEFAULT_THREADS`."""
  cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
          else os.cpu_count() or 1)
  return min(cpus, MAX_DEFAULT_THREADS)


def _checked_options(metrics: Sequence[str], distance: str, no_relevant: str,
                     map_at_k: str) -> tuple[MetricSpec, ...]:
  """The parsed metrics; ValueError for a duplicate metric or an unknown option."""
  specs = tuple(parse_metric(m) for m in metrics)
  if len({s.name for s in specs}) != len(specs):
    raise ValueError(f"Duplicate metric names in {list(metrics)}.")
  for name, value, allowed in (("distance", distance, DISTANCES),
                               ("no_relevant", no_relevant, tuple(NO_RELEVANT)),
                               ("map_at_k", map_at_k, tuple(MAP_AT_K))):
    if value not in allowed:
      raise ValueError(f"Unknown {name} {value!r}; expected one of {allowed}.")
  return specs


def evaluate(query_emb: np.ndarray, query_labels: np.ndarray, gallery_emb: np.ndarray,
             gallery_labels: np.ndarray, *, metrics: Sequence[str] = DEFAULT_METRICS,
             distance: str = "euclidean", block_size: int = 1024, num_threads: int | None = None,
             pr_points: int = 11, no_relevant: str = "exclude",
             map_at_k: str = "sake") -> Evaluation:
  """Every query against the whole gallery, all requested metrics in one blocked pass.

  Args:
    query_emb: (Q, D) float embeddings (`euclidean`) or (Q, n_bits) {0, 1} codes (`hamming`).
    query_labels: (Q,) int class labels.
    gallery_emb: (G, D) or (G, n_bits), like `query_emb`.
    gallery_labels: (G,) int class labels.
    metrics: metric names (module docstring).
    distance: `euclidean` or `hamming`.
    block_size: at most this many queries per block (one matrix product); `block_bounds`
      says how the queries are cut. Peak memory is about num_threads x block_size x G x 8 bytes
      (5 for hamming) on top of the inputs and a float64 copy of the gallery.
    num_threads: worker threads; None: the CPUs this process may run on, at most
      `MAX_DEFAULT_THREADS`. The results do not depend on it, nor on `block_size`.
    pr_points: recall levels of the mean interpolated precision-recall curve (>= 2).
    no_relevant: how queries without a relevant gallery item count, a key of `NO_RELEVANT`.
    map_at_k: the denominator of AP@K, a key of `MAP_AT_K` (SAKE's by default).

  Returns:
    An `Evaluation`.

  Raises:
    ValueError: bad arguments or shapes; its subclasses `EmptyGalleryError`,
      `NonFiniteEmbeddingsError` and `NoRelevantItemsError` (no query has a relevant item).
  """
  specs = _checked_options(metrics, distance, no_relevant, map_at_k)
  num_threads = _default_threads() if num_threads is None else num_threads
  if block_size < 1 or num_threads < 1 or pr_points < 2:
    raise ValueError(f"Need block_size >= 1, num_threads >= 1, pr_points >= 2; got "
                     f"{block_size}, {num_threads}, {pr_points}.")
  query_emb, query_labels, gallery_emb, gallery_labels = _validated(
      query_emb, query_labels, gallery_emb, gallery_labels)
  included = np.isin(query_labels, gallery_labels)
  if not included.any():
    raise NoRelevantItemsError(f"None of the {len(query_labels)} queries has a relevant "
                               f"gallery item (query classes {np.unique(query_labels)[:10]}).")
  problem = _prepare(distance, query_emb, query_labels, gallery_emb, gallery_labels, specs,
                     pr_points, map_at_k, block_size)
  # Blocks of label-sorted queries: one big matrix product, then rows of one class at a time.
  order = np.flatnonzero(included)[np.argsort(query_labels[included], kind="stable")]
  # Sums in query order, whatever the blocks: results do not depend on them.
  per_query, pr = _per_query(problem, order, num_threads)
  if no_relevant == "sake":
    for spec in specs:
      if spec.kind == "p":
        per_query[spec.name][~included] = 0.0
  classes = np.unique(query_labels)
  per_class = _per_class(per_query, query_labels, classes)
  return Evaluation(
      metrics={name: _nan_mean(v) for name, v in per_query.items()},
      class_balanced={name: _nan_mean(v) for name, v in per_class.items()},
      per_class=per_class,
      classes=classes,
      per_query=per_query,
      pr_recall=np.linspace(0.0, 1.0, pr_points),
      pr_precision=pr[included].mean(axis=0),
      n_queries=len(query_labels),
      n_gallery=len(gallery_labels),
      n_without_relevant=int((~included).sum()),
      distance=distance,
      no_relevant=no_relevant,
      map_at_k=map_at_k,
  )
