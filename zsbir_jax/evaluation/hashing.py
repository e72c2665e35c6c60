"""Iterative quantisation (ITQ) hashing and Hamming distances for the field's hashed results.

ITQ (Gong & Lazebnik, CVPR 2011; PAMI 2013): centre the embeddings, project them on the top
`n_bits` principal directions (V = (x - mean) P), then find the orthogonal rotation R minimising
the quantisation loss ||B - V R||_F^2 with B = sign(V R) in {-1, +1}, alternating
B = sign(V R) and the orthogonal Procrustes solution R = W U^T for the SVD V^T B = W S U^T.
Both steps minimise the same loss, so it never increases. Learned on training-photo embeddings
(64 bits in the field), in float64 NumPy, from a seeded random orthogonal start.

Reproducibility: the same embeddings give the same hash, bit for bit: each principal direction's
sign is fixed (its largest entry positive, as LAPACK's sign is arbitrary) and the fit and the
encoding run on one BLAS thread (a multi-threaded BLAS may sum in another order). Nearby
embeddings need not: the iterations are discontinuous in the data, since a training item whose
V R is near 0 can flip its sign in B and lead to another fixed point of the loss. On small
training sets that changes retrieval results (the evaluation stores the embeddings it hashed).

Codes are {0, 1} uint8 arrays (n, n_bits), bit = [V R >= 0]. Hamming distances are computed
exactly as one float32 matrix product of +-1 codes: hamming = (n_bits - a.b) / 2, integers far
below 2^24.
"""
from typing import NamedTuple

import numpy as np
import threadpoolctl


class ItqParams(NamedTuple):
  """A fitted ITQ hash (a pytree): mean (D,), projection (D, n_bits), rotation (n_bits, n_bits)."""
  mean: np.ndarray
  projection: np.ndarray
  rotation: np.ndarray


def fit_itq(x: np.ndarray, n_bits: int = 64, n_iter: int = 50, seed: int = 0) -> ItqParams:
  """Learns PCA + ITQ rotation on (N, D) embeddings `x`, N > n_bits, D >= n_bits."""
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or not n_bits <= x.shape[1] or x.shape[0] <= n_bits:
    raise ValueError(f"ITQ with {n_bits} bits needs (N, D) embeddings with N > {n_bits} and "
                     f"D >= {n_bits}; got shape {x.shape}.")
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    mean = x.mean(axis=0)
    centred = x - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    projection = eigenvectors[:, np.argsort(eigenvalues)[::-1][:n_bits]]
    largest = np.abs(projection).argmax(axis=0)
    projection = projection * np.sign(projection[largest, np.arange(n_bits)])
    v = centred @ projection
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n_bits, n_bits)))
    for _ in range(n_iter):
      signs = np.where(v @ rotation >= 0, 1.0, -1.0)
      w, _, ut = np.linalg.svd(v.T @ signs)
      rotation = w @ ut
  return ItqParams(mean, projection, rotation)


def _rotated(params: ItqParams, x: np.ndarray) -> np.ndarray:
  """(N, n_bits) V R for (N, D) embeddings."""
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    return (np.asarray(x, np.float64) - params.mean) @ params.projection @ params.rotation


def encode(params: ItqParams, x: np.ndarray) -> np.ndarray:
  """(N, n_bits) uint8 {0, 1} codes of (N, D) embeddings."""
  return (_rotated(params, x) >= 0).astype(np.uint8)


def quantisation_loss(params: ItqParams, x: np.ndarray) -> float:
  """ITQ's objective ||sign(V R) - V R||_F^2 on (N, D) embeddings."""
  vr = _rotated(params, x)
  return float(np.square(np.where(vr >= 0, 1.0, -1.0) - vr).sum())


def to_signs(bits: np.ndarray) -> np.ndarray:
  """(N, n_bits) {0, 1} codes -> float32 +-1, the operand of `hamming_from_signs`."""
  bits = np.asarray(bits)
  if bits.ndim != 2 or not np.isin(bits, (0, 1)).all():
    raise ValueError(f"Expected (N, n_bits) codes of 0 and 1; got shape {bits.shape}, "
                     f"values {np.unique(bits)[:5]}.")
  return np.where(bits == 1, 1.0, -1.0).astype(np.float32)


def hamming_from_signs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(N, M) Hamming distances of (N, n_bits) and (M, n_bits) +-1 float32 codes.

  uint8 for n_bits < 256, else uint16: both are radix-sorted in linear time by a stable argsort.
  """
  n_bits = a.shape[1]
  distances = a @ b.T
  np.subtract(n_bits, distances, out=distances)
  distances *= 0.5
  return distances.astype(np.uint8 if n_bits < 256 else np.uint16)


def hamming_distance(a_bits: np.ndarray, b_bits: np.ndarray) -> np.ndarray:
  """(N, M) Hamming distances of (N, n_bits) and (M, n_bits) {0, 1} codes."""
  return hamming_from_signs(to_signs(a_bits), to_signs(b_bits))
