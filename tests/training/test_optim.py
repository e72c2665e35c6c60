"""Optimizers against torch.optim (Adam with L2 decay, AdamW, SGD with Nesterov; warm-up +
cosine), schedules over the real updates, gradient accumulation, the backbone's rate."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from experiments.configs import common
from zsbir_jax.training import optim


def optim_config(**overrides):
  config = common.base_config().optim
  config.update(overrides)
  return config


def torch_optimizer(config, groups, updates: int, steps_per_epoch: int):
  """torch.optim's optimizer and per-update scheduler for an `optim` config, built independently:
  linear warm-up (from ~0) then cosine annealing to 0 at the last update."""
  kwargs = {"adam": dict(betas=(config.b1, config.b2), eps=config.eps),
            "adamw": dict(betas=(config.b1, config.b2), eps=config.eps),
            "sgd": dict(momentum=config.momentum, nesterov=config.nesterov)}[config.name]
  cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
  reference = cls[config.name](groups, lr=config.lr, weight_decay=config.weight_decay, **kwargs)
  warmup = int(config.warmup_epochs * steps_per_epoch) // config.grad_accum_steps
  cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=updates - 1 - warmup)
  if not warmup:
    return reference, cosine
  linear = torch.optim.lr_scheduler.LinearLR(reference, start_factor=1e-12, total_iters=warmup)
  return reference, torch.optim.lr_scheduler.SequentialLR(reference, [linear, cosine], [warmup])


@pytest.mark.parametrize("name, nesterov", [("adam", False), ("adamw", False), ("sgd", True)])
def test_optimizer_and_cosine_schedule_match_torch_optim(name, nesterov):
  """Adam with L2 decay (SAKE's), AdamW and SGD with Nesterov momentum, a backbone group at
  0.1 x the rate, warm-up + cosine: every parameter after every update equals torch.optim's."""
  rng = np.random.default_rng(0)
  params = {"backbone": {"w": rng.normal(size=(3, 4))}, "classifier": {"b": rng.normal(size=4)}}
  config = optim_config(name=name, nesterov=nesterov, momentum=0.9, lr=1e-2, weight_decay=5e-2,
                        schedule="cosine", epochs=2, warmup_epochs=0.5, backbone_lr_mult=0.1)
  steps_per_epoch = 4
  updates = optim.num_updates(config, steps_per_epoch)
  grads = [jax.tree.map(lambda p: rng.normal(size=p.shape), params) for _ in range(updates)]
  tensors = [torch.tensor(params["backbone"]["w"], requires_grad=True),
             torch.tensor(params["classifier"]["b"], requires_grad=True)]
  reference, scheduler = torch_optimizer(
      config, [{"params": tensors[:1], "lr": 0.1 * config.lr}, {"params": tensors[1:]}],
      updates, steps_per_epoch)
  with jax.enable_x64():
    tx = optim.make_optimizer(config, steps_per_epoch)
    ours = jax.tree.map(jnp.asarray, params)
    state = tx.init(ours)
    for g in grads:
      updates_, state = tx.update(jax.tree.map(jnp.asarray, g), state, ours)
      ours = optax.apply_updates(ours, updates_)
      tensors[0].grad = torch.tensor(g["backbone"]["w"])
      tensors[1].grad = torch.tensor(g["classifier"]["b"])
      reference.step()
      scheduler.step()
      # The changes agree to the float32 precision of the rate (optax counts updates in int32,
      # so the schedule is evaluated in float32), relative to each leaf's largest change; 1e-13:
      # torch's warm-up starts at 1e-12 x lr, not 0.
      for value, tensor, initial in zip(jax.tree.leaves(ours), tensors, jax.tree.leaves(params)):
        want = tensor.detach().numpy() - initial
        assert np.abs(np.asarray(value) - initial - want).max() <= 1e-6 * np.abs(want).max() + 1e-13


def applied_rates(config, steps_per_epoch):
  """The heads' rate each call of the optimizer actually applies (None where it only
  accumulates), read off plain SGD's update -rate x (mean gradient = 1)."""
  config = optim_config(**dict(config.items(), name="sgd", momentum=0.0, weight_decay=0.0))
  tx = optim.make_optimizer(config, steps_per_epoch)
  params = {"classifier": jnp.zeros(())}
  state, rates = tx.init(params), []
  for _ in range(config.epochs * steps_per_epoch):
    updates, state = tx.update({"classifier": jnp.ones(())}, state, params)
    applied = isinstance(state, optax.MultiStepsState) and state.mini_step != 0
    rates.append(None if applied else -float(updates["classifier"]))
  return rates


@pytest.mark.parametrize("accum", [1, 2, 5])
@pytest.mark.parametrize("warmup_epochs", [0.0, 0.4])
def test_cosine_schedule_runs_over_the_real_updates(accum, warmup_epochs):
  """With k-fold accumulation the schedule spans the run's real updates: no warm-up starts at
  the peak rate, the last update reaches the end value (0), the rates equal torch's cosine
  schedule over the updates, and the logged rate of each call is the one its update applies."""
  config = optim_config(lr=1.0, schedule="cosine", epochs=2, warmup_epochs=warmup_epochs,
                        grad_accum_steps=accum)
  steps_per_epoch = 10
  rates = applied_rates(config, steps_per_epoch)
  applied = [r for r in rates if r is not None]
  updates = 20 // accum
  assert len(applied) == updates and rates[accum - 1::accum] == applied
  assert applied[-1] == 0.0
  if not warmup_epochs:
    assert applied[0] == 1.0
  tensor = torch.zeros((), requires_grad=True)
  reference, scheduler = torch_optimizer(optim_config(**dict(config.items(), name="sgd")),
                                         [tensor], updates, steps_per_epoch)
  expected = []
  for _ in range(updates):
    expected.append(reference.param_groups[0]["lr"])
    reference.step()
    scheduler.step()
  # The schedule is float32: near the end its error is ~1e-8 of the peak (measured 1.1e-8).
  np.testing.assert_allclose(applied, expected, rtol=1e-6, atol=1e-7)
  logged = optim.step_learning_rate(config, steps_per_epoch)
  np.testing.assert_allclose([logged(s) for s in range(accum, 21, accum)], applied, atol=1e-7)
  # Calls that only accumulate log the rate of the update they feed.
  assert [logged(s) for s in range(1, 21)] == [logged(s - s % -accum) for s in range(1, 21)]


def loss(params, images, targets):
  """A small two-group model's mean squared error over a batch (mean over examples)."""
  hidden = jnp.tanh(images @ params["backbone"]["w"])
  return jnp.mean((hidden @ params["classifier"]["w"] + params["classifier"]["b"] - targets)**2)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_accumulated_micro_batches_equal_one_update_on_their_concatenation(name):
  """k calls on k micro-batches (warm-up + cosine over the run) leave every leaf where one
  update per group of k on the concatenated batch (whose gradient is the mean) leaves it."""
  accum, steps_per_epoch, epochs, micro = 3, 6, 2, 4
  rng = np.random.default_rng(1)
  with jax.enable_x64():
    params = {"backbone": {"w": jnp.asarray(rng.normal(size=(5, 3)))},
              "classifier": {"w": jnp.asarray(rng.normal(size=(3, 2))),
                             "b": jnp.asarray(rng.normal(size=2))}}
    data = [(rng.normal(size=(micro, 5)), rng.normal(size=(micro, 2)))
            for _ in range(epochs * steps_per_epoch)]
    config = dict(name=name, nesterov=True, lr=0.05, weight_decay=1e-2, schedule="cosine",
                  epochs=epochs, warmup_epochs=1.0, backbone_lr_mult=0.5)
    grad = jax.jit(jax.grad(loss))

    tx = optim.make_optimizer(optim_config(**config, grad_accum_steps=accum), steps_per_epoch)
    accumulated, state = params, tx.init(params)
    for images, targets in data:
      updates, state = tx.update(grad(accumulated, images, targets), state, accumulated)
      accumulated = optax.apply_updates(accumulated, updates)

    # One call per k micro-batches: an epoch has steps_per_epoch / k of them.
    tx = optim.make_optimizer(optim_config(**config), steps_per_epoch // accum)
    whole, state = params, tx.init(params)
    for i in range(0, len(data), accum):
      images, targets = map(np.concatenate, zip(*data[i:i + accum]))
      updates, state = tx.update(grad(whole, images, targets), state, whole)
      whole = optax.apply_updates(whole, updates)

    for a, w, p in zip(*map(jax.tree.leaves, (accumulated, whole, params))):
      assert np.all(w != p)  # every value moved
      # Float64: measured at most 3e-15 of the leaf's largest change.
      assert np.abs(a - w).max() <= 1e-12 * np.abs(w - p).max()


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


def test_accumulation_that_does_not_divide_the_run_is_an_error():
  with pytest.raises(ValueError, match=r"grad_accum_steps = 2 must divide the run's 3 epochs x "
                     r"5 steps = 15 steps"):
    optim.make_optimizer(optim_config(epochs=3, grad_accum_steps=2), steps_per_epoch=5)


def test_unknown_names_are_errors():
  with pytest.raises(ValueError, match="optim.name must be"):
    optim.make_optimizer(optim_config(name="lamb"), 1)
  with pytest.raises(ValueError, match="optim.schedule must be"):
    optim.make_optimizer(optim_config(schedule="step"), 1)
