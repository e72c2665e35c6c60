"""The JAX-vs-PyTorch benchmark scripts run end to end (tiny settings, subprocesses).

They print figures, never assert speeds; these tests check that each command runs, prints its
table, and that what the two frameworks computed agrees where the script compares it.
"""
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.benchmarks import full_step
from experiments.benchmarks import step_profile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run(module, *args):
  env = dict(os.environ, XLA_FLAGS="")  # one device, as a user runs them
  result = subprocess.run([sys.executable, "-m", f"experiments.benchmarks.{module}", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def table_rows(output: str) -> list[list[str]]:
  return [[c.strip() for c in line.strip("|").split("|")] for line in output.splitlines()
          if line.startswith("| ") and not line.startswith(("| batch", "| backbone"))
          and "---" not in line]


def test_train_step_benchmark_prints_both_frameworks_and_backbones():
  out = run("train_step", "--shapes=resnet18:8x32,lite0:4x32", "--steps=1", "--warmup=0",
            "--noxla_conv_baseline")
  rows = table_rows(out)
  assert [r[:3] for r in rows] == [["ResNet-18", "8", "32 px"],
                                   ["EfficientNet-Lite0", "4", "32 px"]]
  for row in rows:
    assert all(float(row[i]) > 0 for i in (3, 5, 6))


def test_embed_benchmark_agrees_with_torch():
  out = run("embed", "--depth=18", "--batch_size=4", "--image_size=32", "--steps=1", "--warmup=0")
  error = float(re.search(r"embeddings agree to (\S+) \(relative\)", out).group(1))
  assert error < 1e-5
  (row,) = table_rows(out)[-1:]
  assert all(float(v) > 0 for v in row)


def test_conv_layers_times_every_convolution_of_the_network():
  out = run("conv_layers", "--backbone=resnet18", "--shape=2x32", "--steps=1", "--warmup=0")
  rows = table_rows(out)
  layers, total = rows[1:-1], rows[-1]  # under the header
  # ResNet-18: the 7x7 stem, 16 3x3 convolutions in 8 basic blocks, 3 strided 1x1 downsamples.
  assert layers[0][:2] == ["7x7/2 32x32x3->64", "1"]
  assert sum(int(r[1]) for r in layers) == 20
  assert sum(int(r[1]) for r in layers if r[0].startswith("1x1/2")) == 3
  assert all(float(v) > 0 for r in layers for v in r[2:])
  assert float(total[2]) > 0 and float(total[5]) > 0


def test_step_profile_accounts_for_the_step():
  out = run("step_profile", "--depth=18", "--shape=8x32", "--top=3")
  wall, summed = map(float, re.search(r"step wall (\S+) s, summed op time (\S+) s", out).groups())
  assert wall > 0 and summed > 0.2 * wall  # the trace saw the step's ops
  kinds = {r[0] for r in table_rows(out)}
  assert {"convolution", "backward", "student forward", "teacher forward"} <= kinds


def test_hlo_ops_maps_fusions_to_their_roots():
  def f(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.maximum(y, 0.0) * 2.0)
  x, w = np.ones((2, 8, 8, 3), np.float32), np.ones((3, 3, 3, 4), np.float32)
  ops = step_profile.hlo_ops(jax.jit(jax.grad(f, argnums=1)).lower(x, w).compile().as_text())
  kinds = {kind for kind, _ in ops.values()}
  assert "convolution" in kinds and "parameter" in kinds
  assert step_profile.pass_of("convolution", "") == "backward"
  assert step_profile.pass_of("add", "jit(f)/transpose(jvp(f))/mul") == "backward"
  assert step_profile.pass_of("add", "jit(f)/jvp(RetrievalModel.encode)/x") == "student forward"


@pytest.mark.parametrize("batch_size", [4, 12])
def test_pk_batch_layout(batch_size):
  batch = full_step.pk_batch(batch_size, 8, num_classes=2)
  assert batch["image"].shape == (batch_size, 8, 8, 3)
  partner = batch["partner"]
  assert (partner[partner] == np.arange(batch_size)).all()
  assert (batch["label"][partner] == batch["label"]).all()
  assert (batch["domain"][partner] != batch["domain"]).all()
  with pytest.raises(ValueError, match="multiple of 4"):
    full_step.pk_batch(6, 8, 2)
