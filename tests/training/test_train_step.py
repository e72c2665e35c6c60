"""The compiled training update: sharding-invariance, FSDP, masks, accumulation, EMA."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from zsbir_jax import domains
from zsbir_jax import sharding
from zsbir_jax.data import sampler
from zsbir_jax.models import backbones
from zsbir_jax.models import resnet
from zsbir_jax.models import retrieval
from zsbir_jax.training import optim
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib

NUM_SEEN, NUM_TEACHER, SIZE = 6, 10, 32


def tiny_config(recipe: str, **optim_overrides):
  config = common.apply_recipe(common.base_config(), recipe)
  config.model.update(depth=18, width=0.125, embed_dim=16)
  config.optim.update(lr=1e-3, **optim_overrides)
  config.loss.ema_momentum = 0.9
  return config


def tiny_state(config, seed=0, family=backbones.RESNET):
  """A small model, a 'pretrained' random backbone, class-wise targets and the frozen teacher."""
  model = retrieval.RetrievalModel(family=family, depth=18, width=0.125, embed_dim=16,
                                   num_seen_classes=NUM_SEEN, num_teacher_classes=NUM_TEACHER)
  backbone = backbones.make(family, depth=18, width=0.125, num_classes=NUM_TEACHER)
  backbone_vars = backbone.init(jax.random.PRNGKey(seed + 1), jnp.zeros((1, SIZE, SIZE, 3)))
  targets = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(seed + 2), (NUM_SEEN, NUM_TEACHER)))
  frozen = {"class_targets": targets}
  if config.loss.skp.weight and config.loss.skp.targets == "online":
    frozen["imagenet_teacher"] = backbone_vars
  optimizer = optim.make_optimizer(config.optim, steps_per_epoch=10)
  state = train_state.create(model, optimizer, jax.random.PRNGKey(seed), SIZE,
                             pretrained_backbone=backbone_vars,
                             with_teacher=bool(config.loss.kd.weight), frozen=frozen)
  step = train_step_lib.make_train_step(model, optimizer, config.loss, imagenet_teacher=backbone)
  return state, step


def pk_batch(seed=0, classes=(0, 1, 2, 3), k=2):
  """P classes x K sketches and K photos with random images (sampler.pk_layout)."""
  layout = {name: jnp.asarray(v) for name, v in sampler.pk_layout(classes, k).items()}
  images = jax.random.normal(jax.random.PRNGKey(seed), (len(layout["label"]), SIZE, SIZE, 3))
  return dict(layout, image=images)


def run_steps(config, devices, fsdp_min_size=None, num_steps=2, family=backbones.RESNET):
  state, step = tiny_state(config, family=family)
  mesh = sharding.make_mesh(devices)
  shardings = sharding.state_shardings(state, mesh, fsdp_min_size)
  state = jax.device_put(state, shardings)
  jitted = train_step_lib.jit_train_step(step, mesh, shardings)
  for i in range(num_steps):
    batch = jax.device_put(pk_batch(seed=i), sharding.batch_sharding(mesh))
    state, metrics = jitted(state, batch)
  return jax.device_get(state), jax.device_get(metrics), state


# Relative tolerance of a state computed on 8 devices against 1: float32 sums in another order.
# Adam's second moments square the gradients, doubling their relative error (1.2e-5 seen on a
# BatchNorm bias with jax 0.11.2's XLA; under 1e-5 with 0.10.2).
STATE_RTOL = 3e-5


def assert_trees_close(a, b, rtol):
  def check(path, x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = max(np.linalg.norm(y), 1e-12)
    assert np.linalg.norm(x - y) / scale <= rtol, jax.tree_util.keystr(path)
  jax.tree_util.tree_map_with_path(check, a, b)


@pytest.fixture(scope="module")
def full_on_one_device():
  return run_steps(tiny_config("full"), jax.devices()[:1])


def test_create_under_a_trace_gives_the_same_state_to_the_last_bits():
  """Traced (jax.jit, jax.eval_shape), `create` is part of the caller's optimised program; at the
  top level on CPU its initialisation is compiled without backend optimisations. Same pytree,
  the same values but for float32 rounding (measured: <= 3e-7 relative, in ~4% of elements)."""
  model = retrieval.RetrievalModel(depth=18, width=0.125, embed_dim=16,
                                   num_seen_classes=NUM_SEEN, num_teacher_classes=NUM_TEACHER)
  optimizer = optim.make_optimizer(tiny_config("full").optim, steps_per_epoch=10)
  make = lambda: train_state.create(model, optimizer, jax.random.PRNGKey(0), SIZE,
                                    with_teacher=True)
  top_level, traced, abstract = make(), jax.jit(make)(), jax.eval_shape(make)
  assert jax.tree.structure(top_level) == jax.tree.structure(abstract)
  for a, b, c in zip(jax.tree.leaves(top_level), jax.tree.leaves(traced),
                     jax.tree.leaves(abstract), strict=True):
    assert a.shape == b.shape == c.shape and a.dtype == b.dtype == c.dtype
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_full_recipe_is_the_same_on_8_devices_as_on_1(full_on_one_device):
  assert len(jax.devices()) == 8
  state1, metrics1, _ = full_on_one_device
  state8, metrics8, sharded = run_steps(tiny_config("full"), jax.devices())
  assert_trees_close(state8, state1, STATE_RTOL)
  assert_trees_close(metrics8, metrics1, 1e-5)
  assert int(state8.step) == 2
  assert sharded.params["classifier"]["kernel"].sharding.is_fully_replicated
  for name in ("loss_cls", "loss_quad", "loss_skp", "loss_kd", "loss_da"):
    assert np.isfinite(metrics1[name]) and metrics1[name] > 0, name
  # Batch norm statistics are global: per-device statistics over 2 of the 16 items would differ
  # from the global ones by far more than 1e-6.
  assert_trees_close(state8.batch_stats, state1.batch_stats, 1e-6)


def test_efficientnet_lite_full_recipe_is_the_same_on_8_devices_as_on_1():
  """Drop-connect draws from the step's key: the same examples drop on 8 devices as on 1.

  Compared field by field over the whole tree, with SGD: the bn2 biases of blocks without a skip
  feed a BatchNorm, so their exact gradient is zero and their float32 gradient is rounding noise,
  which no per-leaf tolerance bounds and which Adam turns into steps of +-lr. Measured on the
  CPU, relative over the whole field (jax 0.10.2 / jax 0.12.1): params 4e-7 / 3.1e-5,
  batch_stats 1e-7 / 1.5e-7, teacher 4e-8 / 2.3e-6, momentum 9e-5 / 6.0e-3, metrics 1.4e-5 /
  8.2e-4. The tolerances cover both releases; a sharding error (per-device statistics, a
  mis-split leaf) gives errors of order 1.
  """
  lite = dict(family=backbones.EFFICIENTNET_LITE, fsdp_min_size=256)
  state1, metrics1, _ = run_steps(tiny_config("full", name="sgd"), jax.devices()[:1], **lite)
  state8, metrics8, sharded = run_steps(tiny_config("full", name="sgd"), jax.devices(), **lite)
  flat = lambda tree: np.concatenate([np.ravel(np.asarray(x, np.float64))
                                      for x in jax.tree.leaves(tree)])
  for field, rtol in (("params", 1e-4), ("batch_stats", 1e-6), ("teacher", 1e-5),
                      ("opt_state", 2e-2)):
    ours, reference = flat(getattr(state8, field)), flat(getattr(state1, field))
    assert np.linalg.norm(ours - reference) <= rtol * np.linalg.norm(reference), field
  assert_trees_close(metrics8, metrics1, 3e-3)
  assert not sharded.params["backbone"]["conv_head"]["kernel"].sharding.is_fully_replicated


def test_the_dropout_key_is_the_steps():
  """EfficientNet-Lite's training forward depends on the step number (its drop-connect key) and
  on nothing else; a ResNet's does not depend on it at all."""
  for family, depends in ((backbones.EFFICIENTNET_LITE, True), (backbones.RESNET, False)):
    state, step = tiny_state(tiny_config("ce"), family=family)
    step = jax.jit(step)
    batch = pk_batch()
    _, first = step(state, batch)
    _, again = step(state, batch)
    _, later = step(state.replace(step=state.step + 1), batch)
    assert first["loss"] == again["loss"]
    assert (first["loss"] != later["loss"]) == depends, family


def test_fsdp_splits_large_leaves_and_changes_nothing(full_on_one_device):
  state1, metrics1, _ = full_on_one_device
  state8, metrics8, sharded = run_steps(tiny_config("full"), jax.devices(), fsdp_min_size=256)
  assert_trees_close(state8, state1, STATE_RTOL)
  assert_trees_close(metrics8, metrics1, 1e-5)
  kernel = sharded.params["backbone"]["layer4_0"]["conv2"]["kernel"]  # (3, 3, 64, 64)
  assert not kernel.sharding.is_fully_replicated
  assert kernel.addressable_shards[0].data.size == kernel.size // 8


@pytest.mark.parametrize("recipe", ["ce", "sake", "eff", "bkd"])
def test_each_recipe_computes_exactly_its_terms(recipe):
  _, metrics, _ = run_steps(tiny_config(recipe), jax.devices()[:1], num_steps=1)
  expected = {"ce": {"cls"}, "sake": {"cls", "skp"}, "eff": {"cls", "quad", "skp"},
              "bkd": {"cls", "quad", "kd", "da"}}[recipe]
  assert {k[5:] for k in metrics if k.startswith("loss_")} == expected
  assert all(np.isfinite(v) for v in metrics.values())
  weighted = recipe == "bkd"
  assert (metrics["modality_weight_sketch"] != 1.0 or metrics["modality_weight_photo"] != 1.0) \
      == weighted


def test_no_nan_when_positives_and_partners_are_missing():
  config = tiny_config("full")
  state, step = tiny_state(config)
  batch = pk_batch()
  # Only sketches, no partners: no anchor has a positive, kd has nothing valid, da no class.
  batch = dict(batch, domain=jnp.zeros_like(batch["domain"]),
               partner=jnp.full_like(batch["partner"], -1))
  new_state, metrics = jax.jit(step)(state, batch)
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
  assert metrics["loss_quad"] == 0 and metrics["loss_kd"] == 0 and metrics["loss_da"] == 0
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(new_state)))


def test_gradient_accumulation_steps_params_and_teacher_every_k_calls():
  config = tiny_config("full", grad_accum_steps=2)
  state, step = tiny_state(config)
  step = jax.jit(step)
  after1, _ = step(state, pk_batch(0))
  jax.tree.map(np.testing.assert_array_equal, after1.params, state.params)
  jax.tree.map(np.testing.assert_array_equal, after1.teacher, state.teacher)
  after2, _ = step(after1, pk_batch(1))
  assert not np.allclose(after2.params["classifier"]["kernel"],
                         state.params["classifier"]["kernel"])
  assert not np.allclose(after2.teacher["params"]["classifier"]["kernel"],
                         state.teacher["params"]["classifier"]["kernel"])


def test_ema_teacher_is_mu_teacher_plus_1_minus_mu_student_after_a_step():
  """After one real step every teacher leaf (parameters and batch statistics) is
  mu theta_T + (1 - mu) theta_S of the old teacher and the new student, mu = 0.9."""
  config = tiny_config("full")
  state, step = tiny_state(config)
  state = state.replace(teacher=jax.tree.map(lambda x: x + 0.01, state.teacher))  # != student
  new, _ = jax.jit(step)(state, pk_batch(0))
  student = {"params": new.params, "batch_stats": new.batch_stats}
  mu = config.loss.ema_momentum

  def check(path, got, old, new_student):
    got, old, new_student = (np.asarray(x, np.float64) for x in (got, old, new_student))
    # In float64 from the float32 mu and 1 - mu the step uses.
    want = np.float32(mu) * old + np.float32(1 - mu) * new_student
    assert not np.array_equal(got, old), jax.tree_util.keystr(path)
    # The step rounds each product and the sum to float32: within 2 ulps of the larger product.
    bound = 2 * np.spacing(np.maximum(np.abs(mu * old), np.abs((1 - mu) * new_student))
                           .astype(np.float32))
    assert np.all(np.abs(got - want) <= bound), jax.tree_util.keystr(path)
  jax.tree_util.tree_map_with_path(check, new.teacher, state.teacher, student)


def test_sake_online_targets_give_the_loss_of_an_independent_computation():
  """The `sake` recipe's step: loss_skp is T^2 KL(softmax(t / T) || softmax(h(e) / T)) averaged
  over the photos, with t the frozen ImageNet teacher's logits (eval mode) on the same images,
  and the loss adds the mean cross-entropy; computed here in NumPy float64."""
  config = tiny_config("sake")
  config.loss.skp.temperature = 2.0
  state, step = tiny_state(config)
  batch = pk_batch(0)
  _, metrics = jax.jit(step)(state, batch)
  model = retrieval.RetrievalModel(depth=18, width=0.125, embed_dim=16,
                                   num_seen_classes=NUM_SEEN, num_teacher_classes=NUM_TEACHER)
  (_, seen, student), _ = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                      batch["image"], train=True, mutable=["batch_stats"])
  backbone = resnet.ResNet(depth=18, width=0.125, num_classes=NUM_TEACHER)
  _, teacher = backbone.apply(state.frozen["imagenet_teacher"], batch["image"], with_logits=True)
  seen, student, teacher = (np.asarray(x, np.float64) for x in (seen, student, teacher))
  assert np.ptp(teacher, axis=0).max() > 1e-3  # the targets depend on the image

  def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))
  t = 2.0
  log_p, log_q = log_softmax(teacher / t), log_softmax(student / t)
  kl = t**2 * np.sum(np.exp(log_p) * (log_p - log_q), -1)
  photos = np.asarray(batch["domain"]) == domains.PHOTO
  skp = kl[photos].mean()
  cls = -np.mean(log_softmax(seen)[np.arange(len(seen)), np.asarray(batch["label"])])
  assert skp > 1e-3
  # Float32 step against float64: measured 2.4e-7 (skp) and 1.0e-7 (loss) relative.
  np.testing.assert_allclose(metrics["loss_skp"], skp, rtol=2e-6)
  np.testing.assert_allclose(metrics["loss"], cls + skp, rtol=2e-6)
