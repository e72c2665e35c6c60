"""ITQ hashing and Hamming distances."""
import numpy as np
import pytest
from sklearn.decomposition import PCA
import threadpoolctl

from zsbir_jax.evaluation import hashing, metrics


def clustered(seed: int, n: int, n_classes: int = 8, dim: int = 48, spread: float = 2.0):
  """Unit-variance Gaussian clusters around random centres of scale `spread`: (n, dim) float32
  and (n,) labels."""
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((n_classes, dim)) * spread
  labels = rng.integers(0, n_classes, n)
  return (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels


def test_deterministic_and_orthogonal():
  x, _ = clustered(0, 600)
  a = hashing.fit_itq(x, n_bits=16, n_iter=20, seed=3)
  b = hashing.fit_itq(x, n_bits=16, n_iter=20, seed=3)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(hashing.encode(a, x), hashing.encode(b, x))
  np.testing.assert_allclose(a.rotation @ a.rotation.T, np.eye(16), atol=1e-10)
  codes = hashing.encode(a, x)
  assert codes.shape == (600, 16) and codes.dtype == np.uint8 and set(np.unique(codes)) == {0, 1}


def itq_reference(x: np.ndarray, n_bits: int, n_iter: int, seed: int):
  """ITQ as Gong & Lazebnik define it: PCA by the SVD of the centred data (directions' signs:
  largest entry positive), V = X W; from R = the Q factor of a seeded Gaussian matrix, n_iter
  times B = sgn(V R) (sgn(0) = 1), then the SVD B^T V = S Omega S_hat^T and R = S_hat S^T."""
  x = x.astype(np.float64)
  centred = x - x.sum(axis=0) / len(x)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  w = vt[:n_bits].T
  w = w * np.sign(w[np.abs(w).argmax(axis=0), np.arange(n_bits)])
  v = centred @ w
  r, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n_bits, n_bits)))
  for _ in range(n_iter):
    b = np.where(v @ r >= 0, 1.0, -1.0)
    s, _, s_hat_t = np.linalg.svd(b.T @ v)
    r = s_hat_t.T @ s.T
  return w, r, (v @ r >= 0).astype(np.uint8)


@pytest.mark.parametrize("n_bits", [8, 16])
def test_itq_matches_independent_implementation(n_bits):
  x, _ = clustered(6, 400, dim=24)
  params = hashing.fit_itq(x, n_bits=n_bits, n_iter=30, seed=2)
  w, r, codes = itq_reference(x, n_bits, 30, 2)
  np.testing.assert_allclose(params.mean, x.astype(np.float64).mean(axis=0), atol=1e-12)
  np.testing.assert_allclose(params.projection, w, atol=1e-12)  # Measured: 6e-14.
  np.testing.assert_allclose(params.rotation, r, atol=1e-12)
  np.testing.assert_array_equal(hashing.encode(params, x), codes)


def test_fit_independent_of_blas_threads():
  x, _ = clustered(7, 3000, dim=64)
  with threadpoolctl.threadpool_limits(4, user_api="blas"):
    many = hashing.fit_itq(x, n_bits=32, n_iter=10)
    many_codes = hashing.encode(many, x)
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    one = hashing.fit_itq(x, n_bits=32, n_iter=10)
  for a, b in zip(many, one):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(many_codes, hashing.encode(one, x))


def test_projection_is_pca():
  x, _ = clustered(1, 500)
  params = hashing.fit_itq(x, n_bits=16, n_iter=0)
  pca = PCA(n_components=16).fit(x.astype(np.float64))
  np.testing.assert_allclose(params.mean, pca.mean_, atol=1e-6)
  # Principal directions agree up to sign.
  np.testing.assert_allclose(np.abs(np.sum(params.projection * pca.components_.T, axis=0)),
                             1.0, atol=1e-6)


def test_quantisation_loss_decreases():
  x, _ = clustered(2, 800)
  losses = [hashing.quantisation_loss(hashing.fit_itq(x, n_bits=16, n_iter=n, seed=5), x)
            for n in range(0, 12)]
  assert all(b <= a + 1e-9 * a for a, b in zip(losses, losses[1:]))
  assert losses[-1] < 0.95 * losses[0]


def test_hamming_distance_counts_differing_bits():
  rng = np.random.default_rng(3)
  a = rng.integers(0, 2, (20, 64), dtype=np.uint8)
  b = rng.integers(0, 2, (30, 64), dtype=np.uint8)
  d = hashing.hamming_distance(a, b)
  np.testing.assert_array_equal(d, (a[:, None] != b[None]).sum(-1))
  assert d.dtype == np.uint8
  with pytest.raises(ValueError, match="codes of 0 and 1"):
    hashing.hamming_distance(a * 2, b)


def test_retrieval_on_clusters_beats_chance():
  # Overlapping clusters: neither trivial nor hopeless.
  x, labels = clustered(4, 2000, spread=0.5)
  params = hashing.fit_itq(x[:1000], n_bits=32, n_iter=30)
  codes = hashing.encode(params, x[1000:])
  q, ql, g, gl = codes[:300], labels[1000:1300], codes[300:], labels[1300:]
  hashed = metrics.evaluate(q, ql, g, gl, metrics=("map@all",), distance="hamming")
  real = metrics.evaluate(x[1000:1300], ql, x[1300:], gl, metrics=("map@all",))
  chance = np.mean(gl[None] == ql[:, None])
  assert hashed.metrics["map@all"] > 2.5 * chance
  assert hashed.metrics["map@all"] > 0.85 * real.metrics["map@all"]
