"""The training launcher: a tiny run's outputs, config errors, NaN stop, exact resume after
SIGKILL (real subprocesses) and a 2-process run (real jax.distributed on localhost)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic as synthetic_config
from zsbir_jax import inference
from zsbir_jax.models import pretrained
from zsbir_jax.training import checkpoint
from zsbir_jax.training import setup
from zsbir_jax.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """Subprocess runs share XLA's persistent compilation cache: only the first compiles."""
  saved = dict(os.environ)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  yield
  os.environ.clear()
  os.environ.update(saved)


@pytest.fixture(scope="module")
def inputs(tiny_synthetic, tmp_path_factory):
  """A 'pretrained' random backbone (4 teacher classes) and its knowledge table."""
  directory = tmp_path_factory.mktemp("inputs")
  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=4, source="test-backbone")
  pretrained.save(str(directory / "backbone"), spec.model().init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3))), spec)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.prepare_knowledge", f"--root={tiny_synthetic}",
       "--split=synthetic", f"--backbone={directory / 'backbone'}",
       f"--output={directory / 'knowledge.npz'}", "--image_size=32", "--batch_size=16"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  return {"root": tiny_synthetic, "backbone": str(directory / "backbone"),
          "knowledge": str(directory / "knowledge.npz")}


def overrides(inputs, **extra):
  values = {"data.root": inputs["root"], "init.backbone": inputs["backbone"],
            "init.knowledge": inputs["knowledge"], "train.checkpoint_every": 2,
            "train.log_every": 1, "optim.epochs": 3}
  values.update(extra)
  return values


def make_config(recipe, values):
  config = synthetic_config.get_config(f"recipe={recipe},runlocal")
  with config.unlocked():
    for key, value in values.items():
      node = config
      *path, leaf = key.split(".")
      for name in path:
        node = node[name]
      node[leaf] = value
  return config


def command(workdir, values, recipe="full"):
  return ([sys.executable, "-m", "experiments.train",
           f"--config=experiments/configs/synthetic.py:recipe={recipe},runlocal",
           f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in values.items()])


def final_variables(workdir):
  variables, step = inference.load_model_variables(str(workdir), which="latest")
  return variables, step


def test_tiny_run_writes_metrics_tensorboard_and_checkpoints(inputs, tmp_path, capsys):
  state = trainer.train_and_evaluate(
      make_config("full", overrides(inputs, **{"evals.unseen.every_epochs": 3})),
      str(tmp_path))
  assert "data check: full check of split synthetic passed in " in capsys.readouterr().out
  assert int(state.step) == 12  # 3 epochs x 4 steps
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  steps = [l["step"] for l in lines if "loss" in l]
  assert steps == list(range(1, 13))
  last_step = [l for l in lines if l["step"] == 12 and "loss" in l][0]
  assert {"loss_cls", "loss_quad", "loss_skp", "loss_kd", "loss_da", "learning_rate",
          "images_per_second", "accuracy", "grad_norm"} <= set(last_step)
  assert sum("val_accuracy" in l for l in lines) == 3
  unseen = [l for l in lines if "unseen_map_all" in l]
  assert [l["step"] for l in unseen] == [12] and 0 < unseen[0]["unseen_map_all"] <= 1
  assert os.listdir(tmp_path / "tensorboard")[0].startswith("events.out.tfevents")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "12", "8"]
  assert len(os.listdir(tmp_path / "best")) == 1
  variables, step = final_variables(tmp_path)
  assert step == 12
  np.testing.assert_array_equal(variables["params"]["classifier"]["kernel"],
                                state.params["classifier"]["kernel"])
  assert json.load(open(tmp_path / "model.json"))["num_teacher_classes"] == 4


def test_config_errors_come_before_any_compute(inputs, tmp_path):
  def error(recipe, **extra):
    with pytest.raises(setup.ConfigError) as e:
      setup.prepare(make_config(recipe, overrides(inputs, **extra)))
    return str(e.value)

  assert "is not divisible by the 8 devices" in error("full", **{
      "data.classes_per_batch": 3, "data.items_per_class": 1})
  assert "needs at least P=8 classes, the split has 6" in error("full", **{
      "data.classes_per_batch": 8})
  assert "needs the class-wise knowledge table" in error("eff", **{"init.knowledge": ""})
  assert "online knowledge targets" in error("sake", **{"init.backbone": ""})
  broken = tmp_path / "broken"
  shutil.copytree(inputs["root"], broken)
  photo = next(p for p in (broken / "Synthetic").rglob("*.jpg"))
  photo.unlink()
  message = error("ce", **{"data.root": str(broken)})
  assert "fails the check" in message and photo.name in message


def test_a_second_start_skips_the_data_check(inputs, tmp_path):
  config = make_config("full", overrides(inputs, **{"data.check": "quick"}))
  first = setup.prepare(config, str(tmp_path)).data_check
  second = setup.prepare(config, str(tmp_path)).data_check
  assert (first.mode, first.skipped, second.mode, second.skipped) == ("quick", False, "quick", True)
  assert setup.prepare(config).data_check.skipped is False  # no workdir: nothing remembered


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(inputs, tmp_path, capsys):
  """Metrics are fetched late (at log steps, before saves): the stop names the step and the
  range checked, and nothing non-finite is saved, whichever check finds it. The runs continue
  one stopped after step 4 (train.stop_after_steps), which saved a checkpoint there."""
  no_evals = {"evals.seen.every_epochs": 0}  # saves and log steps are what is checked here
  trainer.train_and_evaluate(make_config("full", overrides(inputs, **{
      "optim.epochs": 2, "train.stop_after_steps": 4, **no_evals})), str(tmp_path))
  assert "stopped after step 4 of 8 (train.stop_after_steps)" in capsys.readouterr().out
  before, step = final_variables(tmp_path)
  assert step == 4
  saved = sorted(os.listdir(tmp_path / "checkpoints"))

  def stops(match, **extra):
    with pytest.raises(FloatingPointError, match=match):
      trainer.train_and_evaluate(make_config("full", overrides(inputs, **{
          "optim.epochs": 2, **no_evals, **extra})), str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == saved
    after, step = final_variables(tmp_path)
    assert step == 4
    jax.tree.map(np.testing.assert_array_equal, after, before)

  nan_margin = {"loss.quad.margin": float("nan")}
  # Found at the log step 6, once step 7 is dispatched.
  stops(r"non-finite loss at step 5 \(found checking steps 5-6\): \{'loss': nan, "
        r"'loss_quad': nan\}", **nan_margin,
        **{"train.log_every": 3, "train.checkpoint_every": 100})
  # Found before the save of step 8, logging off.
  stops(r"non-finite loss at step 5 \(found checking steps 5-8\)", **nan_margin,
        **{"train.log_every": 100, "train.checkpoint_every": 100})
  # An infinite learning rate: the loss of step 5 is finite, the state after it is not.
  stops(r"non-finite values in the state of step 5, from an update of steps 5-5",
        **{"optim.lr": float("inf"), "train.log_every": 100, "train.checkpoint_every": 5})


def wait_for(predicate, process, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.005)
  return False


def test_sigkill_and_resume_gives_exactly_the_uninterrupted_parameters(inputs, tmp_path):
  # Evaluations off: they choose the best checkpoint, not the parameters compared here.
  values = overrides(inputs, **{"train.log_every": 4, "evals.seen.every_epochs": 0})
  reference = subprocess.run(command(tmp_path / "reference", values), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
  assert reference.returncode == 0, reference.stderr[-3000:]

  workdir = tmp_path / "killed"
  checkpoints = workdir / "checkpoints"
  unfinished = lambda: checkpoints.is_dir() and any("tmp" in n for n in os.listdir(checkpoints))
  # 1: killed while a checkpoint is being written (its temporary directory exists). The save may
  # complete between the poll and the kill: then that try did not test this case; try again.
  for _ in range(5):
    shutil.rmtree(workdir, ignore_errors=True)
    process = subprocess.Popen(command(workdir, values), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    in_save = wait_for(unfinished, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert in_save, "the run ended before a save could be interrupted"
    if unfinished():
      break
  assert unfinished(), "no kill in 5 tries left an unfinished checkpoint on disk"
  first = checkpoint.Checkpoints(str(workdir), keep=3).latest_step()
  assert process.returncode == -signal.SIGKILL and (first or 0) < 12
  # 2: killed between checkpoints, after resuming.
  process = subprocess.Popen(command(workdir, values), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  for line in process.stdout:
    if line.startswith("step 8/"):
      break
  process.send_signal(signal.SIGKILL)
  process.wait()
  second = checkpoint.Checkpoints(str(workdir), keep=3).latest_step()
  # Killed mid-run: not after the last step.
  assert process.returncode == -signal.SIGKILL and (first or 0) < second < 12
  # 3: runs to the end.
  final = subprocess.run(command(workdir, values), cwd=REPO, capture_output=True, text=True,
                         timeout=300)
  assert final.returncode == 0, final.stderr[-3000:]
  assert f"start: resuming from the checkpoint of step {second}" in final.stdout

  resumed, step = final_variables(workdir)
  expected, expected_step = final_variables(tmp_path / "reference")
  assert step == expected_step == 12
  jax.tree.map(np.testing.assert_array_equal, resumed, expected)  # bitwise
  losses = lambda d: [l["loss"] for l in map(json.loads, open(d / "metrics.jsonl")) if "loss" in l]
  assert losses(workdir) == losses(tmp_path / "reference")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one(inputs, tmp_path):
  values = overrides(inputs, **{"optim.epochs": 1, "train.log_every": 4, "data.check": "off"})
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  port = free_port()
  processes = [subprocess.Popen(
      command(tmp_path / "two", values) + [f"--coordinator_address=localhost:{port}",
                                           "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  assert "2 processes, 4 devices" in outputs[0]
  printed = lambda out: re.search(r"^step 4/4 ", out, re.MULTILINE)  # not absl's log lines
  assert printed(outputs[0]) and not printed(outputs[1])  # only process 0 prints progress

  one = subprocess.run(command(tmp_path / "one", values), cwd=REPO, capture_output=True,
                       text=True, timeout=300,
                       env=dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  assert one.returncode == 0, one.stderr[-3000:]
  two_vars, two_step = final_variables(tmp_path / "two")
  one_vars, one_step = final_variables(tmp_path / "one")
  assert two_step == one_step == 4

  # The two runs sum gradients in different orders (across processes vs. within one). Adam's
  # normalised step turns float32 rounding in a near-zero gradient into a difference of up to a
  # step (at most lr per element) in that parameter: measured 3.1e-6 and 6.1e-6, each time in
  # one element (jax 0.12.1), below 1e-6 under jax 0.10.2. So every value must agree within one
  # step, and all but 1e-4 of the values within 1e-6.
  lr = make_config("full", values).optim.lr
  pairs = list(zip(jax.tree.leaves(two_vars), jax.tree.leaves(one_vars), strict=True))
  for a, b in pairs:
    np.testing.assert_allclose(a, b, rtol=0, atol=lr)
  apart = sum(int(np.sum(~np.isclose(a, b, rtol=1e-5, atol=1e-6))) for a, b in pairs)
  assert apart <= 1e-4 * sum(a.size for a, _ in pairs), apart


def test_full_recipe_learns_on_a_tiny_synthetic_set(inputs, tmp_path):
  """A few hundred steps drive the loss down and raise seen-class accuracy (train and val)."""
  values = overrides(inputs, **{"optim.epochs": 60, "optim.schedule": "constant",
                                "evals.seen.every_epochs": 30, "train.checkpoint_every": 1000,
                                "data.check": "off"})
  trainer.train_and_evaluate(make_config("full", values), str(tmp_path))
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  steps = [l for l in lines if "loss" in l]
  assert len(steps) == 240
  first, last = steps[:20], steps[-20:]
  mean = lambda rows, key: float(np.mean([r[key] for r in rows]))
  # Measured here: loss 3.06 -> 1.80, cls 1.92 -> 1.26, batch accuracy 0.25 -> 0.61, val 0.83.
  assert mean(last, "loss") < 0.75 * mean(first, "loss")
  assert mean(last, "loss_cls") < 0.8 * mean(first, "loss_cls")
  assert mean(last, "accuracy") > mean(first, "accuracy") + 0.2
  val = [l["val_accuracy"] for l in lines if "val_accuracy" in l]
  assert val[-1] > 0.4  # 12 held-out sketches of 6 classes: chance is 1/6
