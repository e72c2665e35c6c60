"""Optimizers: SAKE's Adam equals torch.optim.Adam (L2 weight decay), schedules, backbone rate."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from experiments.configs import common
from zsbir_jax.training import optim


def optim_config(**overrides):
  config = common.base_config().optim
  config.update(overrides)
  return config


def test_default_adam_matches_torch_adam_with_weight_decay():
  rng = np.random.default_rng(0)
  params = {"backbone": {"w": rng.normal(size=(3, 4)).astype(np.float32)},
            "classifier": {"b": rng.normal(size=(4,)).astype(np.float32)}}
  grads = [jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
           for _ in range(5)]
  config = optim_config(lr=1e-2, weight_decay=5e-4, schedule="constant")
  tx = optim.make_optimizer(config, steps_per_epoch=10)
  state, ours = tx.init(params), params
  for g in grads:
    updates, state = tx.update(g, state, ours)
    ours = jax.tree.map(lambda p, u: p + u, ours, updates)

  tensors = [torch.tensor(params["backbone"]["w"], requires_grad=True),
             torch.tensor(params["classifier"]["b"], requires_grad=True)]
  reference = torch.optim.Adam(tensors, lr=1e-2, weight_decay=5e-4)
  for g in grads:
    tensors[0].grad = torch.tensor(g["backbone"]["w"])
    tensors[1].grad = torch.tensor(g["classifier"]["b"])
    reference.step()
  np.testing.assert_allclose(ours["backbone"]["w"], tensors[0].detach().numpy(),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ours["classifier"]["b"], tensors[1].detach().numpy(),
                             rtol=1e-5, atol=1e-6)


def test_sake_schedule_decays_by_epoch():
  schedule = optim.learning_rate_schedule(optim_config(lr=1e-4, epochs=20), steps_per_epoch=5)
  for step, epoch in [(0, 0), (4, 0), (5, 1), (99, 19)]:
    np.testing.assert_allclose(schedule(step), 1e-4 * 0.001**(epoch / 20), rtol=1e-6)


def test_cosine_warms_up_then_decays():
  schedule = optim.learning_rate_schedule(
      optim_config(lr=1.0, epochs=10, schedule="cosine", warmup_epochs=1.0), steps_per_epoch=10)
  values = np.array([schedule(s) for s in range(100)])
  assert values[0] == 0 and np.isclose(values[10], 1.0)
  assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) < 0)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_backbone_learning_rate_multiplier(name):
  params = {"backbone": {"w": jnp.ones(3)}, "embedding": {"w": jnp.ones(3)}}
  grads = {"backbone": {"w": jnp.ones(3)}, "embedding": {"w": jnp.ones(3)}}
  config = optim_config(name=name, lr=0.1, weight_decay=0.0, schedule="constant",
                        backbone_lr_mult=0.1)
  tx = optim.make_optimizer(config, steps_per_epoch=1)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["backbone"]["w"], 0.1 * updates["embedding"]["w"], rtol=1e-6)
  assert np.all(updates["embedding"]["w"] < 0)


def test_unknown_names_are_errors():
  with pytest.raises(ValueError, match="optim.name must be"):
    optim.make_optimizer(optim_config(name="lamb"), 1)
  with pytest.raises(ValueError, match="optim.schedule must be"):
    optim.make_optimizer(optim_config(schedule="step"), 1)
