"""Backbone pretraining: the engine's sharded classification step and a tiny end-to-end run.

(The shuffled photo stream is tested with the pipeline, tests/data/test_pipeline.py.)
"""
import jax
import numpy as np
import optax
import pytest

from experiments.configs import common
from experiments.configs import pretrain_backbone as pretrain_config
from zsbir_jax import domains
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic
from zsbir_jax.models import pretrained
from zsbir_jax.models import resnet
from zsbir_jax.training import pretraining
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib


def _optim(epochs: int, lr: float = 2e-3):
  optim = common.base_config().optim
  optim.update(lr=lr, schedule="cosine", epochs=epochs, warmup_epochs=1.0)
  return optim


def test_sharded_step_matches_unsharded_reference():
  """Batch split over 8 devices: loss, BN statistics and update are those of the whole batch."""
  model = resnet.ResNet(depth=18, width=0.125, num_classes=4)
  rng = np.random.default_rng(0)
  batch = {"image": rng.standard_normal((16, 32, 32, 3), np.float32),
           "label": rng.integers(0, 4, 16).astype(np.int32)}
  variables = pretraining.init_variables(model, seed=0, image_size=32)
  optimizer = optax.sgd(0.1)
  state = train_state.from_variables(variables, optimizer)
  mesh = sharding.make_mesh()
  step = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(model, optimizer, pretrain_config.get_config().loss), mesh,
      sharding.state_shardings(state, mesh))
  new_state, metrics = jax.device_get(step(state, batch))
  assert len(jax.devices()) == 8

  # Unjitted, unsharded reference; loss and fc gradient from the logits in NumPy.
  (features, logits), updates = model.apply(variables, batch["image"], train=True,
                                            with_logits=True, mutable=["batch_stats"])
  z = np.asarray(logits, np.float64)
  log_probs = z - z.max(1, keepdims=True)
  log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
  np.testing.assert_allclose(metrics["loss"], -log_probs[np.arange(16), batch["label"]].mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"], np.mean(z.argmax(1) == batch["label"]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new_state.batch_stats, jax.device_get(updates["batch_stats"]))
  dlogits = (np.exp(log_probs) - np.eye(4)[batch["label"]]) / 16
  fc_grad = np.asarray(features, np.float64).T @ dlogits
  np.testing.assert_allclose(new_state.params["fc"]["kernel"],
                             variables["params"]["fc"]["kernel"] - 0.1 * fc_grad,
                             rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def pretrain_root(tmp_path_factory) -> str:
  """A synthetic root whose pretraining set has 4 classes x 24 photos (80 train, 16 val)."""
  root = str(tmp_path_factory.mktemp("pretrain"))
  synthetic.generate(root, synthetic.SyntheticConfig(
      seed=0, image_size=32, num_seen=2, num_unseen=1, sketches_per_class=1,
      test_sketches_per_class=1, photos_per_class=1, num_pretrain=4, pretrain_photos_per_class=24,
      pretrain_val_per_class=4), workers=1)
  return root


def test_pretrain_learns_and_saves_a_loadable_backbone(pretrain_root, tmp_path):
  data = lists.load_pretrain(pretrain_root)
  config = pretrain_config.get_config()
  config.model.update(depth=18, width=0.125)
  config.data.update(image_size=32, batch_size=16, eval_batch_size=8)
  config.optim, config.log_every = _optim(epochs=20, lr=5e-3), 5
  reports = []
  # Two devices: the batch is still split, at a fraction of the cost of eight.
  result = pretraining.pretrain(data, config, mesh=sharding.make_mesh(jax.devices()[:2]),
                                report=reports.append)
  assert result.steps == 100 and reports == result.history and len(result.history) == 20
  losses = [h["loss"] for h in result.history]
  assert np.mean(losses[-3:]) < 0.6 * losses[0]
  labels = np.array([r.label for r in data.val])
  assert result.val_accuracy == np.mean(result.val_logits.argmax(1) == labels)
  assert result.val_accuracy >= 0.5  # chance is 0.25

  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=4, source="test")
  pretrained.save(str(tmp_path / "backbone"), result.variables, spec)
  variables, loaded_spec = pretrained.load(str(tmp_path / "backbone"))
  x = np.stack([augment.preprocess(images.load_rgb(r.path), domains.PHOTO,
                                   augment.AugmentConfig(size=32)) for r in data.val])
  _, logits = loaded_spec.model().apply(variables, x, with_logits=True)
  np.testing.assert_allclose(logits, result.val_logits, rtol=1e-4, atol=1e-4)
