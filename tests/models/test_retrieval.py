"""The retrieval model over either backbone family: feature size, the saved spec, and the heads'
SVD initialisation from a pretrained classifier, checked by its defining properties (no SVD in
the checks) and through `from_pretrained` on a real ResNet."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained
from zsbir_jax.models import resnet
from zsbir_jax.models import retrieval


def test_efficientnet_lite_backbone_gives_its_feature_size_and_pretrained_logits(tmp_path):
  """The heads read the backbone's own feature size (160 here; Lite0: 1280), and the
  SVD-initialised teacher head reproduces the pretrained classifier's logits when D >= K."""
  spec = pretrained.BackboneSpec(family=backbones.EFFICIENTNET_LITE, variant=0, width=0.125,
                                 num_classes=10, source="unit-test")
  x = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
  backbone = spec.model()
  backbone_variables = backbone.init(jax.random.key(0), x)
  model = retrieval.RetrievalModel(family=backbones.EFFICIENTNET_LITE, variant=0, width=0.125,
                                   embed_dim=16, num_seen_classes=4, num_teacher_classes=10)
  variables = model.init(jax.random.key(2), x)
  assert variables["params"]["embedding"]["kernel"].shape == (backbone.feature_dim, 16) == (160, 16)
  params, batch_stats = retrieval.from_pretrained(variables["params"], variables["batch_stats"],
                                                  backbone_variables)
  _, _, teacher_logits = model.apply({"params": params, "batch_stats": batch_stats}, x)
  _, expected = backbone.apply(backbone_variables, x, with_logits=True)
  np.testing.assert_allclose(teacher_logits, expected, rtol=1e-4, atol=1e-5)

  mean, std = backbones.INPUT_NORMALIZATION[backbones.EFFICIENTNET_LITE]
  retrieval.save_spec(model, str(tmp_path), mean, std)
  assert retrieval.load_spec(str(tmp_path)) == model
  assert retrieval.input_normalization(retrieval.read_spec(str(tmp_path))) == (mean, std)


def head_params(num_features, embed_dim, num_classes, seed=0):
  """Random float64 'embedding' and 'teacher_head' params of the retrieval model's shapes."""
  rng = np.random.default_rng(seed)
  return {"embedding": {"kernel": rng.normal(size=(num_features, embed_dim)),
                        "bias": rng.normal(size=embed_dim)},
          "teacher_head": {"kernel": rng.normal(size=(embed_dim, num_classes)),
                           "bias": rng.normal(size=num_classes)}}


def classifier(num_features, num_classes, seed=1):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(num_features, num_classes)), rng.normal(size=num_classes)


def composed(heads):
  """h(e(f)) = A f + c as (A (K, F), c): the teacher head after the embedding, both linear."""
  embedding, head = heads["embedding"], heads["teacher_head"]
  kernel = np.asarray(embedding["kernel"]) @ np.asarray(head["kernel"])  # (F, K)
  bias = np.asarray(embedding["bias"]) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
  return kernel.T, bias


@pytest.mark.parametrize("embed_dim", [6, 9])  # D equal to and above the rank (6)
def test_h_of_e_is_the_pretrained_classifier_when_d_reaches_its_rank(embed_dim):
  """K = 6 classes, F = 10 features: rank 6 <= D, so h(e(f)) = W f + b exactly; with D > 6 the
  extra embedding columns keep their random init and the head ignores them (zero rows)."""
  with jax.enable_x64():
    params = head_params(10, embed_dim, 6)
    kernel, bias = classifier(10, 6)
    heads = retrieval.svd_init(params, kernel, bias)
    weight, offset = composed(heads)
  # Measured: 1.7e-15 (float64).
  np.testing.assert_allclose(weight, kernel.T, rtol=0, atol=1e-12)
  np.testing.assert_allclose(offset, bias, rtol=0, atol=1e-12)
  np.testing.assert_array_equal(heads["embedding"]["bias"], 0)
  extra = slice(6, embed_dim)
  np.testing.assert_array_equal(heads["embedding"]["kernel"][:, extra],
                                params["embedding"]["kernel"][:, extra])
  np.testing.assert_array_equal(heads["teacher_head"]["kernel"][extra], 0)


def test_h_of_e_is_the_best_rank_d_approximation_when_d_is_below_the_rank():
  """D = 3 < rank 6: A = U_3 S_3 V_3^T, characterised without an SVD: rank 3, and the residual
  W - A is orthogonal to A on both sides (which holds for the truncation at distinct singular
  values only); the teacher head's columns are orthonormal (U_3)."""
  with jax.enable_x64():
    params = head_params(10, 3, 6)
    kernel, bias = classifier(10, 6)
    heads = retrieval.svd_init(params, kernel, bias)
    approximation, offset = composed(heads)
  weight = kernel.T
  residual = weight - approximation
  assert np.linalg.matrix_rank(approximation) == 3
  assert np.linalg.norm(residual) > 0.1 * np.linalg.norm(weight)  # a real truncation
  np.testing.assert_allclose(approximation @ residual.T, 0, atol=1e-12)  # measured 6e-15
  np.testing.assert_allclose(approximation.T @ residual, 0, atol=1e-12)
  head = np.asarray(heads["teacher_head"]["kernel"])  # (D, K)
  np.testing.assert_allclose(head @ head.T, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(offset, bias, rtol=0, atol=1e-12)


def test_a_classifier_of_the_wrong_shape_is_an_error():
  params = head_params(10, 4, 6)
  for kernel in (np.zeros((10, 5)), np.zeros((12, 6))):
    with pytest.raises(ValueError, match=r"does not fit the model: teacher head has K = 6, "
                       r"backbone features F = 10"):
      retrieval.svd_init(params, kernel, np.zeros(kernel.shape[1]))


def test_from_pretrained_reproduces_the_pretrained_logits():
  """A random ResNet-18 x 1/8 with a 5-way fc (F = 64 features, D = 16): the retrieval model's
  teacher logits equal the ResNet's own on images, its backbone variables are the ResNet's, and
  the seen-class classifier keeps its init."""
  size = 32
  backbone = resnet.ResNet(depth=18, width=0.125, num_classes=5)
  images = jax.random.normal(jax.random.key(0), (4, size, size, 3))
  backbone_vars = jax.jit(backbone.init)(jax.random.key(1), images)
  # Non-trivial batch norms (the init's zero residual scales and unit statistics would leave
  # features that do not exercise the heads): scales ~U(0.5, 1.5), statistics perturbed.
  rng = np.random.default_rng(2)
  perturb = {"scale": lambda x: rng.uniform(0.5, 1.5, x.shape),
             "mean": lambda x: 0.1 * rng.normal(size=x.shape),
             "var": lambda x: rng.uniform(0.5, 1.5, x.shape)}
  backbone_vars = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.asarray(perturb.get(path[-1].key, np.asarray)(x), x.dtype),
      backbone_vars)
  model = retrieval.RetrievalModel(depth=18, width=0.125, embed_dim=16, num_seen_classes=3,
                                   num_teacher_classes=5)
  variables = jax.jit(model.init)(jax.random.key(3), images)
  params, batch_stats = retrieval.from_pretrained(variables["params"], variables["batch_stats"],
                                                  backbone_vars)
  _, pretrained_logits = backbone.apply(backbone_vars, images, with_logits=True)
  _, _, teacher_logits = model.apply({"params": params, "batch_stats": batch_stats}, images)
  features = model.apply({"params": params, "batch_stats": batch_stats}, images,
                         method=lambda m, x: m.backbone(x, False))
  assert np.abs(features).min(axis=0).max() > 0  # the logits depend on the images
  scale = np.abs(pretrained_logits - backbone_vars["params"]["fc"]["bias"]).max()
  # Float32 products in another order: measured 1.5e-7 of the largest image-dependent part.
  np.testing.assert_allclose(teacher_logits, pretrained_logits, rtol=0, atol=1e-6 * scale)
  jax.tree.map(np.testing.assert_array_equal, batch_stats["backbone"],
               backbone_vars["batch_stats"])
  fc_free = {k: v for k, v in backbone_vars["params"].items() if k != "fc"}
  jax.tree.map(np.testing.assert_array_equal, params["backbone"], fc_free)
  jax.tree.map(np.testing.assert_array_equal, params["classifier"],
               variables["params"]["classifier"])
