"""Metrics against a plain per-query NumPy implementation of SAKE's definitions, and sklearn."""
import numpy as np
import pytest
from scipy.spatial import distance
from sklearn.metrics import average_precision_score

from zsbir_jax.evaluation import metrics

ALL = ("map@all", "map@5", "map@40", "p@5", "p@40", "map_noninterp@all", "map_noninterp@40")


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
  """VOC 2010 AP, written as the definition reads."""
  mrec = np.concatenate(([0.0], rec, [1.0]))
  mpre = np.concatenate(([0.0], prec, [0.0]))
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  changed = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1]))


def reference_query(distances: np.ndarray, relevant: np.ndarray, name: str,
                    map_at_k: str = "sake") -> float:
  """One query's metric: stable sort of the distances, cumulative tp / fp, as SAKE's code;
  AP@K divided by min(K, n_pos) (SAKE) or by the relevant items in the first K (Doodle)."""
  rel = relevant[np.argsort(distances, kind="stable")]
  kind, k = name.split("@")
  n_gallery, n_pos = len(rel), int(rel.sum())
  top = n_gallery if k == "all" else min(int(k), n_gallery)
  if kind == "p":
    return rel[:top].sum() / top
  rel = rel[:top]
  if k != "all":
    n_pos = min(int(k), n_pos) if map_at_k == "sake" else int(rel.sum())
    if n_pos == 0:
      return 0.0
  tp, fp = np.cumsum(rel), np.cumsum(~rel)
  prec = tp / (tp + fp)
  if kind == "map":
    return voc_ap(tp / n_pos, prec)
  return float(prec[rel].sum() / n_pos)


def reference(distances: np.ndarray, query_labels, gallery_labels, names,
              map_at_k: str = "sake") -> dict:
  """name -> (Q,) per-query values, NaN for queries without a relevant item."""
  out = {}
  for name in names:
    values = []
    for row, label in zip(distances, query_labels):
      relevant = gallery_labels == label
      values.append(reference_query(row, relevant, name, map_at_k) if relevant.any()
                    else np.nan)
    out[name] = np.array(values)
  return out


def euclidean(q: np.ndarray, g: np.ndarray) -> np.ndarray:
  return np.sqrt(((q[:, None, :].astype(np.float64) - g[None].astype(np.float64)) ** 2).sum(-1))


def integer_data(seed: int, n_query: int, n_gallery: int, n_classes: int):
  """Integer embeddings: float32 products are exact; a query is redrawn until its distances
  are all distinct, so that the data have no ties."""
  rng = np.random.default_rng(seed)
  g = rng.integers(-500, 501, (n_gallery, 8)).astype(np.float32)
  q = rng.integers(-500, 501, (n_query, 8)).astype(np.float32)
  for i in range(n_query):
    while len(np.unique(euclidean(q[i:i + 1], g))) < n_gallery:
      q[i] = rng.integers(-500, 501, 8)
  ql = rng.integers(0, n_classes, n_query)
  gl = rng.integers(0, n_classes, n_gallery)
  return q, ql, g, gl, euclidean(q, g)


@pytest.mark.parametrize("block_size", [7, 256])
def test_matches_reference_without_ties(block_size):
  q, ql, g, gl, d = integer_data(0, 150, 400, 6)
  result = metrics.evaluate(q, ql, g, gl, metrics=ALL, block_size=block_size)
  expected = reference(d, ql, gl, ALL)
  for name in ALL:
    np.testing.assert_allclose(result.per_query[name], expected[name], rtol=0, atol=1e-9,
                               err_msg=name)
    assert result.metrics[name] == pytest.approx(expected[name].mean(), abs=1e-9)
  assert result.n_queries == 150 and result.n_gallery == 400 and result.n_without_relevant == 0


def unit_vectors(rng, n: int, dim: int) -> np.ndarray:
  x = rng.standard_normal((n, dim)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def near_tie_data(seed: int, n_query: int = 40, n_gallery: int = 300, dim: int = 64):
  """Unit float32 vectors; half the gallery are copies of other items (some exact, some moved
  by one float32 ulp in one coordinate), with their own random labels: exact ties and float64
  distances closer than float32 resolves."""
  rng = np.random.default_rng(seed)
  q, g = unit_vectors(rng, n_query, dim), unit_vectors(rng, n_gallery, dim)
  copies = rng.choice(n_gallery, n_gallery // 2, replace=False)
  sources = rng.choice(np.setdiff1d(np.arange(n_gallery), copies), len(copies))
  g[copies] = g[sources]
  moved = copies[::2]
  col = rng.integers(0, dim, len(moved))
  g[moved, col] = np.nextafter(g[moved, col], np.float32(2))
  return q, rng.integers(0, 4, n_query), g, rng.integers(0, 4, n_gallery)


def test_equals_float64_cdist_ranking_over_seeds():
  # SAKE ranks by scipy's float64 cdist; ties (identical vectors) by gallery index.
  names = ("map@all", "map@20", "p@20", "map_noninterp@all")
  worst = 0.0
  for seed in range(12):
    q, ql, g, gl = near_tie_data(seed)
    result = metrics.evaluate(q, ql, g, gl, metrics=names, block_size=16)
    expected = reference(distance.cdist(q.astype(np.float64), g.astype(np.float64)), ql, gl,
                         names)
    for name in names:
      np.testing.assert_allclose(result.per_query[name], expected[name], rtol=0, atol=1e-12,
                                 err_msg=f"seed {seed}, {name}")
    worst = max(worst, np.abs(result.per_query["map@all"] - expected["map@all"]).max())
  assert worst < 1e-12


def test_random_unit_vectors_equal_float64():
  rng = np.random.default_rng(1)
  x = unit_vectors(rng, 700, 128)
  labels = rng.integers(0, 5, 700)
  q, ql, g, gl = x[:100], labels[:100], x[100:], labels[100:]
  result = metrics.evaluate(q, ql, g, gl, metrics=("map@all", "p@50"), block_size=32)
  expected = reference(distance.cdist(q.astype(np.float64), g.astype(np.float64)), ql, gl,
                       ("map@all", "p@50"))
  for name in ("map@all", "p@50"):
    np.testing.assert_allclose(result.per_query[name], expected[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("same_labels", [True, False])
def test_duplicated_gallery_ties_by_index(same_labels):
  # Sketchy's standard galleries list photos twice: identical vectors, same or another label.
  rng = np.random.default_rng(13)
  q, g = unit_vectors(rng, 60, 512), unit_vectors(rng, 400, 512)
  ql, gl = rng.integers(0, 3, 60), rng.integers(0, 3, 400)
  twice = rng.choice(400, 150, replace=False)
  g_all = np.concatenate([g, g[twice]])
  gl_all = np.concatenate([gl, gl[twice] if same_labels else (gl[twice] + 1) % 3])
  shuffle = rng.permutation(len(g_all))
  g_all, gl_all = g_all[shuffle], gl_all[shuffle]
  names = ("map@all", "map@200", "p@100")
  result = metrics.evaluate(q, ql, g_all, gl_all, metrics=names, block_size=7)
  d = distance.cdist(q.astype(np.float64), g_all.astype(np.float64))
  expected = reference(d, ql, gl_all, names)
  for name in names:
    np.testing.assert_allclose(result.per_query[name], expected[name], rtol=0, atol=1e-12)
  if not same_labels:  # The tie order decides: the reversed gallery gives other numbers.
    flipped = metrics.evaluate(q, ql, g_all[::-1], gl_all[::-1], metrics=("map@all",))
    assert np.abs(flipped.per_query["map@all"] - result.per_query["map@all"]).max() > 1e-4


@pytest.mark.parametrize("distance_name", ["euclidean", "hamming"])
def test_bit_identical_for_any_block_size_and_threads(distance_name):
  q, ql, g, gl = near_tie_data(21, n_query=50, n_gallery=600, dim=64)
  if distance_name == "hamming":
    q, g = (q > 0).astype(np.uint8), (g > 0).astype(np.uint8)
  runs = [metrics.evaluate(q, ql, g, gl, metrics=ALL, distance=distance_name,
                           block_size=block_size, num_threads=threads)
          for block_size in (1, 7, 1024) for threads in (1, 2, 4)]
  for run in runs[1:]:
    for name in ALL:
      np.testing.assert_array_equal(run.per_query[name], runs[0].per_query[name])
    np.testing.assert_array_equal(run.pr_precision, runs[0].pr_precision)


def test_distinct_rows_found_exactly():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((50, 6))
  x[[10, 30, 49]] = x[4]
  x[20] = x[7]
  x[21] = -0.0 * x[21] + x[21]  # Unchanged values.
  x[35], x[36] = x[8], x[8]
  x[36, 0] = np.nextafter(x[36, 0], 9)  # One ulp away: not a repeat.
  first, expand = metrics._distinct_rows(x)
  np.testing.assert_array_equal(first, np.setdiff1d(np.arange(50), [10, 20, 30, 35, 49]))
  np.testing.assert_array_equal(x[first][expand], x)
  np.testing.assert_array_equal(first[expand][[10, 20, 30, 35, 49, 36]], [4, 7, 4, 8, 4, 36])


def test_non_interpolated_equals_sklearn():
  q, ql, g, gl, d = integer_data(2, 40, 300, 4)
  result = metrics.evaluate(q, ql, g, gl, metrics=("map_noninterp@all",))
  expected = [average_precision_score(gl == label, -row) for row, label in zip(d, ql)]
  np.testing.assert_allclose(result.per_query["map_noninterp@all"], expected, atol=1e-9)


@pytest.mark.parametrize("relevance, interpolated, sklearn_ap", [
    ([0, 1, 1], 2 / 3, 0.5833333333333333),
    ([0, 1, 0, 0, 1, 1], 0.5, 0.4666666666666667),
])
def test_worked_examples(relevance, interpolated, sklearn_ap):
  # Query at 0, gallery at 1, 2, 3, ... on a line: the ranking is the gallery order.
  n = len(relevance)
  gallery = np.arange(1, n + 1, dtype=np.float32)[:, None]
  result = metrics.evaluate(np.zeros((1, 1), np.float32), [1], gallery, relevance,
                            metrics=("map@all", "map_noninterp@all"))
  assert result.metrics["map@all"] == pytest.approx(interpolated, abs=1e-12)
  assert result.metrics["map_noninterp@all"] == pytest.approx(sklearn_ap, abs=1e-12)
  assert average_precision_score(relevance, -gallery[:, 0]) == pytest.approx(sklearn_ap)


def test_at_k_uses_min_k_npos_and_first_k():
  # Relevance [1, 0, 1, 1, 0, 1]: AP@3 over ranks 1..3 with n_pos -> min(3, 4) = 3:
  # precisions 1, 2/3 at the relevant ranks 1 and 3 -> (1 + 2/3) / 3.
  ranks = np.array([[1, 3, 4, 6]])
  specs = [metrics.parse_metric(m) for m in ("map@3", "p@3", "map@all", "p@10")]
  values, _ = metrics.metrics_from_ranks(ranks, 6, specs, pr_points=2)
  assert values["map@3"][0] == pytest.approx((1 + 2 / 3) / 3)
  assert values["p@3"][0] == pytest.approx(2 / 3)
  assert values["map@all"][0] == pytest.approx((1 + 3 / 4 + 3 / 4 + 4 / 6) / 4)
  assert values["p@10"][0] == pytest.approx(4 / 6)  # min(K, gallery) = 6.


def test_k_larger_than_gallery():
  q, ql, g, gl, d = integer_data(3, 30, 50, 3)
  names = ("map@200", "p@200", "map@all")
  result = metrics.evaluate(q, ql, g, gl, metrics=names)
  expected = reference(d, ql, gl, names)
  for name in names:
    np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-9)
  np.testing.assert_allclose(result.per_query["map@200"], result.per_query["map@all"],
                             atol=1e-12)
  np.testing.assert_allclose(result.per_query["p@200"],
                             [np.mean(gl == label) for label in ql], atol=1e-12)


def test_queries_without_relevant_items_are_excluded_and_counted():
  q, ql, g, gl, d = integer_data(4, 60, 200, 4)
  ql = ql.copy()
  ql[:7] = 9  # No gallery item has class 9.
  result = metrics.evaluate(q, ql, g, gl, metrics=("map@all", "p@10"))
  assert result.n_without_relevant == 7
  assert np.isnan(result.per_query["map@all"][:7]).all()
  assert np.isnan(result.per_query["p@10"][:7]).all()
  expected = reference(d[7:], ql[7:], gl, ("map@all", "p@10"))
  for name in ("map@all", "p@10"):
    assert result.metrics[name] == pytest.approx(expected[name].mean(), abs=1e-9)
  assert np.isnan(result.per_class["map@all"][list(result.classes).index(9)])
  assert result.to_json()["n_without_relevant"] == 7


def test_sake_convention_for_queries_without_relevant_items():
  q, ql, g, gl, d = integer_data(4, 60, 200, 4)
  ql = ql.copy()
  ql[[3, 10, 11]] = 9  # No gallery item has class 9.
  names = ("map@all", "map@20", "p@10", "p@50")
  result = metrics.evaluate(q, ql, g, gl, metrics=names, no_relevant="sake")
  expected = reference(d, ql, gl, names)
  for name in ("p@10", "p@50"):  # SAKE: P@K = 0 for them, counted in the mean.
    expected[name][[3, 10, 11]] = 0.0
  for name in names:
    np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-12)
    assert result.metrics[name] == pytest.approx(np.nanmean(expected[name]), abs=1e-12)
  assert result.n_without_relevant == 3
  assert np.isnan(result.per_class["map@all"][list(result.classes).index(9)])
  assert result.per_class["p@10"][list(result.classes).index(9)] == 0.0
  assert result.to_json()["no_relevant"].startswith("sake: SAKE's: P@K = 0")
  excluded = metrics.evaluate(q, ql, g, gl, metrics=names)
  assert excluded.metrics["map@all"] == result.metrics["map@all"]
  assert excluded.metrics["p@10"] > result.metrics["p@10"]


@pytest.mark.parametrize("map_at_k", ["sake", "doodle"])
def test_map_at_k_denominators(map_at_k):
  q, ql, g, gl, d = integer_data(14, 60, 300, 5)
  names = ("map@all", "map@10", "map@60", "map_noninterp@10", "map@400")
  result = metrics.evaluate(q, ql, g, gl, metrics=names, map_at_k=map_at_k, block_size=16)
  expected = reference(d, ql, gl, names, map_at_k=map_at_k)
  for name in names:
    np.testing.assert_allclose(result.per_query[name], expected[name], rtol=0, atol=1e-12,
                               err_msg=name)
  assert result.to_json()["map_at_k"].startswith(map_at_k)
  other = metrics.evaluate(q, ql, g, gl, metrics=("map@10",),
                           map_at_k="doodle" if map_at_k == "sake" else "sake")
  assert abs(other.metrics["map@10"] - result.metrics["map@10"]) > 0.01


def test_doodle_map_at_k_worked_example():
  # Relevance [0, 1, 0, 1, 0 | 1, 1]: AP@5 has precisions 1/2, 2/4 at the two relevant items
  # found, interpolated 1/2, 1/2: SAKE's 1 / min(5, 4), Doodle-to-Search's 1 / 2.
  gallery = np.arange(1, 8, dtype=np.float32)[:, None]
  relevance = [0, 1, 0, 1, 0, 1, 1]
  for map_at_k, value in (("sake", 1 / 4), ("doodle", 1 / 2)):
    result = metrics.evaluate(np.zeros((1, 1), np.float32), [1], gallery, relevance,
                              metrics=("map@5",), map_at_k=map_at_k)
    assert result.metrics["map@5"] == pytest.approx(value, abs=1e-15)


def test_class_balanced_is_mean_of_class_means():
  q, ql, g, gl, d = integer_data(5, 90, 200, 3)
  ql = np.sort(ql)
  ql[:60] = 0  # Unequal class sizes: the two averages differ.
  result = metrics.evaluate(q, ql, g, gl, metrics=("map@all", "p@20"), block_size=16)
  expected = reference(d, ql, gl, ("map@all", "p@20"))
  for name in ("map@all", "p@20"):
    class_means = [expected[name][ql == c].mean() for c in np.unique(ql)]
    np.testing.assert_allclose(result.per_class[name], class_means, atol=1e-9)
    assert result.class_balanced[name] == pytest.approx(np.mean(class_means), abs=1e-9)
    assert result.metrics[name] == pytest.approx(expected[name].mean(), abs=1e-9)
  assert result.class_balanced["map@all"] != pytest.approx(result.metrics["map@all"], abs=1e-6)


def test_real_valued_ties_ordered_by_gallery_index():
  # Coarse integer coordinates: many exactly equal distances, within and across classes.
  rng = np.random.default_rng(6)
  q = rng.integers(-2, 3, (80, 3)).astype(np.float32)
  g = rng.integers(-2, 3, (300, 3)).astype(np.float32)
  ql, gl = rng.integers(0, 4, 80), rng.integers(0, 4, 300)
  d = euclidean(q, g)
  assert min(len(np.unique(row)) for row in d) < 100  # Heavy ties.
  result = metrics.evaluate(q, ql, g, gl, metrics=ALL, block_size=13)
  expected = reference(d, ql, gl, ALL)
  for name in ALL:
    np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-9,
                               err_msg=name)


@pytest.mark.parametrize("base", [0.37, -0.37, 0.0])
def test_sort_key_flag_keeps_exact_float32_order(base):
  # Distances on a few adjacent float32 values: every relevant item shares its sort key with
  # irrelevant ones at one unit in the last place, in both directions, and ties exactly.
  rng = np.random.default_rng(10)
  grid = np.array([base], np.float32)
  for _ in range(5):
    grid = np.append(grid, np.nextafter(grid[-1], np.float32(np.inf)))
  distances = rng.choice(grid, (20, 300)).astype(np.float32)
  relevant = rng.random(300) < 0.3
  expected = np.stack([np.flatnonzero(relevant[np.argsort(row, kind="stable")]) + 1
                       for row in distances.astype(np.float64)])
  keys = np.empty(20 * 300 + 1, np.float32)
  flags = np.empty((20, 300), bool)
  ranks = metrics._flagged_ranks(distances.copy(), relevant.astype(np.uint32), keys, flags,
                                 lambda r, members: distances[r, members].astype(np.float64))
  np.testing.assert_array_equal(ranks, expected)


def sake_style(scores: np.ndarray, query_labels, gallery_labels, k: int = 100):
  """(AP@all, P@K) per query as SAKE's evaluation loop computes them from similarity scores,
  with its argsort made stable: ranked = argsort(-scores); tp / fp cumulative sums; recall and
  precision padded with 0 / 1 and 0, precision made non-increasing from the end, summed where
  recall changes; P@K from the first K of the ranking."""
  aps, precisions = [], []
  for row, label in zip(scores, query_labels):
    relevant = (gallery_labels == label)[np.argsort(-row, kind="stable")]
    tp, fp = np.cumsum(relevant), np.cumsum(~relevant)
    rec = np.concatenate(([0.0], tp / relevant.sum(), [1.0]))
    prec = np.concatenate(([0.0], tp / (tp + fp), [0.0]))
    for i in range(len(prec) - 2, -1, -1):
      prec[i] = max(prec[i], prec[i + 1])
    i = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    aps.append(np.sum((rec[i] - rec[i - 1]) * prec[i]))
    precisions.append(relevant[:k].mean())
  return np.array(aps), np.array(precisions)


@pytest.mark.parametrize("n_bits", [16, 64])
def test_hashed_codes_against_sake_style_loop(n_bits):
  # Hamming distances of few bits: ties everywhere, between and within classes.
  rng = np.random.default_rng(n_bits)
  # Correlated bits (codes of clustered data): ties stay frequent at 64 bits too.
  centres = rng.random((4, n_bits)) < 0.5
  ql, gl = rng.integers(0, 4, 80), rng.integers(0, 4, 500)
  flip = 0.2 if n_bits == 16 else 0.3
  qb = (centres[ql] ^ (rng.random((80, n_bits)) < flip)).astype(np.uint8)
  gb = (centres[gl] ^ (rng.random((500, n_bits)) < flip)).astype(np.uint8)
  hamming = (qb[:, None, :] != gb[None]).sum(-1)
  assert min(len(np.unique(row)) for row in hamming) < 40  # Heavy ties.
  result = metrics.evaluate(qb, ql, gb, gl, metrics=("map@all", "p@100"), distance="hamming",
                            block_size=11)
  aps, precisions = sake_style(-hamming.astype(np.float64), ql, gl)
  np.testing.assert_allclose(result.per_query["map@all"], aps, rtol=0, atol=1e-12)
  np.testing.assert_allclose(result.per_query["p@100"], precisions, rtol=0, atol=1e-12)


@pytest.mark.parametrize("block_size", [9, 64])
def test_hamming_heavy_ties_ordered_by_gallery_index(block_size):
  rng = np.random.default_rng(7)
  qb = rng.integers(0, 2, (70, 16), dtype=np.uint8)
  gb = rng.integers(0, 2, (400, 16), dtype=np.uint8)
  ql, gl = rng.integers(0, 5, 70), rng.integers(0, 5, 400)
  d = (qb[:, None, :] != gb[None]).sum(-1)
  result = metrics.evaluate(qb, ql, gb, gl, metrics=ALL, distance="hamming",
                            block_size=block_size)
  expected = reference(d, ql, gl, ALL)
  for name in ALL:
    np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-9,
                               err_msg=name)
  # Reversing the gallery changes the tie order, hence the numbers: the rule matters here.
  flipped = metrics.evaluate(qb, ql, gb[::-1], gl[::-1], metrics=("map@all",),
                             distance="hamming")
  assert flipped.metrics["map@all"] != pytest.approx(result.metrics["map@all"], abs=1e-6)


@pytest.mark.parametrize("distance", ["euclidean", "hamming"])
def test_large_gallery_rows_in_several_chunks(distance):
  # 70,000 items: rows are sorted ~3 at a time (1 MiB of float32), so class runs span chunks.
  rng = np.random.default_rng(11)
  if distance == "euclidean":  # Exact in float32; ties are frequent and ordered by index.
    q = rng.integers(-500, 501, (12, 8)).astype(np.float32)
    g = rng.integers(-500, 501, (70_000, 8)).astype(np.float32)
    d = euclidean(q, g)
  else:
    q = rng.integers(0, 2, (12, 8), dtype=np.uint8)
    g = rng.integers(0, 2, (70_000, 8), dtype=np.uint8)
    d = (q[:, None, :] != g[None]).sum(-1)
  ql, gl = rng.integers(0, 3, 12), rng.integers(0, 3, 70_000)
  names = ("map@all", "map@50", "p@100")
  result = metrics.evaluate(q, ql, g, gl, metrics=names, distance=distance, block_size=5)
  expected = reference(d, ql, gl, names)
  for name in names:
    np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-9,
                               err_msg=name)


@pytest.mark.parametrize("n, block_size, num_threads", [
    (15_229, 1024, 2), (100, 30, 3), (10, 5, 2), (5, 1, 4), (1, 1, 2), (0, 8, 2), (7, 100, 1)])
def test_block_bounds_cover_every_query_once_staggered(n, block_size, num_threads):
  bounds = metrics.block_bounds(n, block_size, num_threads)
  sizes = np.diff(bounds)
  assert bounds[0] == 0 and bounds[-1] == n and (sizes > 0).all()
  assert sizes.max(initial=0) <= block_size
  if n >= num_threads * block_size >= num_threads**2:  # First blocks: 1/T, 2/T, ... of full.
    full = sizes[num_threads - 1]
    np.testing.assert_array_equal(sizes[:num_threads - 1],
                                  [full * k // num_threads for k in range(1, num_threads)])


def test_default_threads_give_the_same_numbers(monkeypatch):
  q, ql, g, gl, _ = integer_data(12, 60, 300, 4)
  one = metrics.evaluate(q, ql, g, gl, metrics=ALL, num_threads=1, block_size=7)
  monkeypatch.setattr(metrics, "MAX_DEFAULT_THREADS", 3)
  default = metrics.evaluate(q, ql, g, gl, metrics=ALL, block_size=7)
  for name in ALL:
    np.testing.assert_array_equal(default.per_query[name], one.per_query[name])


def test_interpolated_pr_curve():
  q, ql, g, gl, d = integer_data(8, 50, 250, 5)
  result = metrics.evaluate(q, ql, g, gl, metrics=("map@all",), pr_points=11)
  curves = []
  for row, label in zip(d, ql):
    rel = (gl == label)[np.argsort(row, kind="stable")]
    tp = np.cumsum(rel)
    prec = tp / np.arange(1, len(rel) + 1)
    # Largest precision at any rank whose recall tp / n_pos reaches j / 10.
    curves.append([prec[tp * 10 >= j * rel.sum()].max() for j in range(11)])
  np.testing.assert_allclose(result.pr_recall, np.linspace(0, 1, 11))
  np.testing.assert_allclose(result.pr_precision, np.mean(curves, axis=0), atol=1e-9)


def test_bad_arguments():
  q, ql, g, gl, _ = integer_data(9, 5, 20, 2)
  with pytest.raises(ValueError, match="Unknown metric 'mAP@all'"):
    metrics.evaluate(q, ql, g, gl, metrics=("mAP@all",))
  with pytest.raises(ValueError, match="Unknown distance"):
    metrics.evaluate(q, ql, g, gl, distance="cosine")
  with pytest.raises(ValueError, match="Shape mismatch"):
    metrics.evaluate(q, ql[:3], g, gl)
  with pytest.raises(ValueError, match="Unknown no_relevant"):
    metrics.evaluate(q, ql, g, gl, no_relevant="zero")
  with pytest.raises(ValueError, match="Unknown map_at_k"):
    metrics.evaluate(q, ql, g, gl, map_at_k="found")


@pytest.mark.parametrize("where, value", [("query", np.nan), ("gallery", np.inf),
                                          ("gallery", -np.inf)])
def test_non_finite_embeddings_are_a_named_error(where, value):
  q, ql, g, gl, _ = integer_data(9, 5, 20, 2)
  (q if where == "query" else g)[3, 1] = value
  with pytest.raises(metrics.NonFiniteEmbeddingsError, match=f"{where}_emb has non-finite "
                     r"values in 1 rows \(first: \[3\]\)"):
    metrics.evaluate(q, ql, g, gl)


def test_empty_gallery_is_a_named_error():
  q, ql, _, _, _ = integer_data(9, 5, 20, 2)
  with pytest.raises(metrics.EmptyGalleryError, match="gallery is empty"):
    metrics.evaluate(q, ql, np.zeros((0, 8), np.float32), np.zeros(0, int))


@pytest.mark.parametrize("no_relevant", ["exclude", "sake"])
def test_every_query_without_relevant_item_is_a_named_error(no_relevant):
  q, _, g, gl, _ = integer_data(9, 5, 20, 2)
  with pytest.raises(metrics.NoRelevantItemsError, match="None of the 5 queries"):
    metrics.evaluate(q, np.full(5, 7), g, gl, no_relevant=no_relevant)
