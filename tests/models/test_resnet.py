"""The functional ResNet: shapes, dtypes, determinism and options, at small widths."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from zsbir_jax.models import resnet


def init(model, size=32, batch=2, seed=0):
  images = jax.random.normal(jax.random.key(seed), (batch, size, size, 3))
  return model.init(jax.random.key(1), images), images


@pytest.mark.parametrize("depth,feature_dim", [(18, 64), (34, 64), (50, 256), (101, 256)])
def test_shapes_per_depth(depth, feature_dim):
  model = resnet.ResNet(depth=depth, width=0.125, num_classes=10)
  assert model.feature_dim == feature_dim
  variables, images = init(model)
  features, logits = jax.jit(lambda v, x: model.apply(v, x, with_logits=True))(variables, images)
  assert features.shape == (2, feature_dim) and features.dtype == jnp.float32
  assert logits.shape == (2, 10)
  assert set(variables) == {"params", "batch_stats"}
  assert "layer4_0" in variables["params"] and "fc" in variables["params"]


def test_torchvision_names_and_layout():
  variables, _ = init(resnet.ResNet(depth=50, width=0.125))
  params = variables["params"]
  assert params["conv1"]["kernel"].shape == (7, 7, 3, 8)
  block = params["layer2_0"]
  assert set(block) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample_conv",
                        "downsample_bn"}
  # v1.5: the stride is on the 3x3 conv; the 1x1 reduce keeps resolution.
  assert block["conv2"]["kernel"].shape == (3, 3, 16, 16)
  assert "downsample_conv" not in params["layer2_1"]
  assert set(variables["batch_stats"]["bn1"]) == {"mean", "var"}


def test_apply_is_deterministic_and_init_is_seeded():
  model = resnet.ResNet(depth=18, width=0.25)
  variables, images = init(model)
  again, _ = init(model)
  jax.tree.map(np.testing.assert_array_equal, variables, again)
  apply = jax.jit(lambda v, x: model.apply(v, x))
  np.testing.assert_array_equal(apply(variables, images), apply(variables, images))
  other = model.init(jax.random.key(2), images)
  assert not np.array_equal(other["params"]["conv1"]["kernel"],
                            variables["params"]["conv1"]["kernel"])


def test_train_mode_updates_batch_stats_and_eval_mode_uses_them():
  model = resnet.ResNet(depth=18, width=0.125, num_classes=0)
  variables, images = init(model, batch=4)
  features, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
  stats = updates["batch_stats"]["bn1"]
  assert not np.allclose(stats["mean"], 0.0)
  # torch semantics: momentum 0.1 towards the batch mean.
  x = jax.lax.conv_general_dilated(
      images, variables["params"]["conv1"]["kernel"], (2, 2), ((3, 3), (3, 3)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(stats["mean"], 0.1 * np.asarray(x).mean((0, 1, 2)), rtol=1e-4,
                             atol=1e-6)
  eval_features = model.apply(variables, images)
  assert not np.allclose(features, eval_features)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = resnet.ResNet(depth=18, width=0.25, num_classes=10, dtype=jnp.bfloat16)
  variables, images = init(model)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  features, logits = model.apply(variables, images, with_logits=True)
  assert features.dtype == jnp.float32 and logits.dtype == jnp.float32
  reference = resnet.ResNet(depth=18, width=0.25, num_classes=10).apply(variables, images)
  np.testing.assert_allclose(features, reference, rtol=0.1, atol=0.05)


def test_remat_changes_nothing_but_memory():
  model = resnet.ResNet(depth=50, width=0.125, num_classes=10)
  rematted = resnet.ResNet(depth=50, width=0.125, num_classes=10, remat=True)
  variables, images = init(model)

  def loss(m):
    def f(params):
      (_, logits), _ = m.apply({"params": params, "batch_stats": variables["batch_stats"]},
                               images, train=True, with_logits=True, mutable=["batch_stats"])
      return jnp.sum(logits**2)
    return jax.jit(jax.value_and_grad(f))(variables["params"])

  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               loss(model), loss(rematted))


def test_errors_are_clear():
  with pytest.raises(ValueError, match="depth must be one of"):
    init(resnet.ResNet(depth=42))
  model = resnet.ResNet(depth=18, width=0.125, num_classes=0)
  variables, images = init(model)
  assert "fc" not in variables["params"]
  with pytest.raises(ValueError, match="num_classes > 0"):
    model.apply(variables, images, with_logits=True)
