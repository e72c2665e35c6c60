"""The retrieval model: backbone -> embedding e (D) -> seen-class and teacher-class heads.

e = embedding(backbone(x)) (B, D); z = e / ||e|| is what retrieval ranks with (`embed`). Two heads
read e: the seen-class classifier g (C logits) and the teacher head h (K logits; K = 1000 for an
ImageNet backbone, the number of pretraining classes on the synthetic benchmark). As in SAKE,
the embedding and h start from the SVD of the pretrained backbone's classifier (`svd_init`) so
that h(e(x)) reproduces the pretrained logits at step 0.
"""
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zsbir_jax.models import backbones


class RetrievalModel(nn.Module):
  """Backbone + embedding + heads. Variables: {'params', 'batch_stats'}; the backbone's are under
  'backbone', the heads' under 'embedding', 'classifier' and 'teacher_head'.

  Attributes:
    family: the backbone's, `backbones.RESNET` (of `depth`) or `EFFICIENTNET_LITE` (of
      `variant`); the embedding reads its pooled features, of whatever size (ResNet-50: 2048,
      Lite0: 1280).
    depth, variant, width, dtype, remat: the backbone's (see `backbones.make`).
    embed_dim: D.
    num_seen_classes: C, the classifier's outputs.
    num_teacher_classes: K, the teacher head's outputs.
  """
  family: str = backbones.RESNET
  depth: int = 50
  variant: int = 0
  width: float = 1.0
  embed_dim: int = 512
  num_seen_classes: int = 100
  num_teacher_classes: int = 1000
  dtype: Any = jnp.float32
  remat: bool = False

  def setup(self):
    self.backbone = backbones.make(self.family, self.depth, self.variant, self.width,
                                   num_classes=0, dtype=self.dtype, remat=self.remat)
    self.embedding = nn.Dense(self.embed_dim)
    self.classifier = nn.Dense(self.num_seen_classes)
    self.teacher_head = nn.Dense(self.num_teacher_classes)

  def encode(self, images: jax.Array, train: bool = False) -> jax.Array:
    """Images (B, H, W, 3) -> embeddings e (B, D), float32, not normalised."""
    return self.embedding(self.backbone(images, train))

  def heads(self, e: jax.Array) -> tuple[jax.Array, jax.Array]:
    """e (B, D) -> (seen-class logits (B, C), teacher-class logits (B, K))."""
    return self.classifier(e), self.teacher_head(e)

  def __call__(self, images: jax.Array, train: bool = False):
    """Images -> (e (B, D), seen logits (B, C), teacher logits (B, K))."""
    e = self.encode(images, train)
    return (e, *self.heads(e))


def normalize(e: jax.Array) -> jax.Array:
  """Rows of e (B, D) scaled to unit L2 norm (a zero row stays zero)."""
  norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
  return e / jnp.maximum(norm, jnp.finfo(e.dtype).tiny)


def embed(model: RetrievalModel, variables: Any, images: jax.Array) -> jax.Array:
  """L2-normalised embeddings z (B, D) in eval mode: what retrieval ranks with."""
  return normalize(model.apply(variables, images, method=RetrievalModel.encode))


def from_pretrained(params: dict[str, Any], batch_stats: dict[str, Any],
                    backbone_variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """Copies a pretrained backbone's variables into the retrieval model's and SVD-initialises heads.

  `params`/`batch_stats` are a freshly initialised RetrievalModel's; `backbone_variables` a
  backbone of the same family with an `fc` head of K = num_teacher_classes outputs. Returns new
  (params, batch_stats); the classifier keeps its random init.
  """
  backbone_params = dict(backbone_variables["params"])
  fc = backbone_params.pop("fc")
  params = dict(params, backbone=backbone_params)
  params.update(svd_init(params, np.asarray(fc["kernel"]), np.asarray(fc["bias"])))
  return params, dict(batch_stats, backbone=backbone_variables["batch_stats"])


def svd_init(params: dict[str, Any], fc_kernel: np.ndarray,
             fc_bias: np.ndarray) -> dict[str, Any]:
  """SAKE's head initialisation from a pretrained classifier W = fc_kernel^T (K x F).

  With W = U S V^T: embedding = S[:D, :D] V^T[:D] (no bias), teacher head = U[:, :D] with the
  classifier's bias, so h(e(f)) = U_D S_D V_D^T f + b ~ W f + b. If D exceeds rank(W) = min(K, F)
  (e.g. the synthetic benchmark's 100 pretraining classes with D = 512), the remaining embedding
  columns keep their random init and the matching teacher-head rows are zero, which keeps
  h(e(f)) equal to the rank-limited product. Returns the new 'embedding' and 'teacher_head' params.
  """
  weight = fc_kernel.T.astype(np.float64)  # (K, F)
  u, s, vt = np.linalg.svd(weight, full_matrices=False)  # (K, r), (r,), (r, F)
  embed_kernel = np.array(params["embedding"]["kernel"], np.float64)  # (F, D)
  num_features, embed_dim = embed_kernel.shape
  if weight.shape != (params["teacher_head"]["kernel"].shape[1], num_features):
    raise ValueError(f"pretrained classifier {weight.shape} (K, F) does not fit the model: "
                     f"teacher head has K = {params['teacher_head']['kernel'].shape[1]}, "
                     f"backbone features F = {num_features}")
  r = min(embed_dim, s.shape[0])
  embed_kernel[:, :r] = (s[:r, None] * vt[:r]).T
  head_kernel = np.zeros((embed_dim, weight.shape[0]))
  head_kernel[:r] = u[:, :r].T
  dtype = params["embedding"]["kernel"].dtype
  return {
      "embedding": {"kernel": jnp.asarray(embed_kernel, dtype),
                    "bias": jnp.zeros((embed_dim,), dtype)},
      "teacher_head": {"kernel": jnp.asarray(head_kernel, dtype),
                       "bias": jnp.asarray(fc_bias, dtype)},
  }


SPEC_FILE = "model.json"
INPUT_KEYS = ("input_mean", "input_std")


def save_spec(model: RetrievalModel, directory: str, input_mean: tuple[float, float, float],
              input_std: tuple[float, float, float]) -> None:
  """Writes `<directory>/model.json`: the model's attributes, so tools can rebuild it, and the
  input normalisation it was trained with (per RGB channel, pixel units; the backbone's), so
  that evaluating the run needs no flag for it."""
  spec = {"family": model.family, "depth": model.depth, "variant": model.variant,
          "width": model.width, "embed_dim": model.embed_dim,
          "num_seen_classes": model.num_seen_classes,
          "num_teacher_classes": model.num_teacher_classes,
          "dtype": jnp.dtype(model.dtype).name, "remat": model.remat,
          "input_mean": list(map(float, input_mean)), "input_std": list(map(float, input_std))}
  with open(os.path.join(directory, SPEC_FILE), "w") as f:
    json.dump(spec, f, indent=2)


def read_spec(directory: str) -> dict[str, Any]:
  """The contents of `<directory>/model.json` (written by `save_spec`)."""
  path = os.path.join(directory, SPEC_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no {SPEC_FILE} in {directory}: not a training workdir")
  with open(path) as f:
    return json.load(f)


def load_spec(directory: str) -> RetrievalModel:
  """The RetrievalModel described by `<directory>/model.json`."""
  spec = {k: v for k, v in read_spec(directory).items() if k not in INPUT_KEYS}
  return RetrievalModel(**dict(spec, dtype=jnp.dtype(spec["dtype"])))


def input_normalization(spec: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(input_mean, input_std) of a model.json's contents; runs written before they were recorded
  take their family's (`backbones.INPUT_NORMALIZATION`)."""
  mean, std = backbones.INPUT_NORMALIZATION[spec.get("family", backbones.RESNET)]
  return tuple(spec.get("input_mean", mean)), tuple(spec.get("input_std", std))
