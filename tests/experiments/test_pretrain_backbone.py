"""pretrain_backbone as a real subprocess: a loadable backbone, and no overwriting."""
import os
import subprocess
import sys

import numpy as np

from zsbir_jax.models import pretrained

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(root: str, output: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "experiments.pretrain_backbone", f"--root={root}",
       f"--output={output}", "--config.model.depth=18", "--config.model.width=0.125",
       "--config.data.image_size=32", "--config.data.batch_size=8", "--config.optim.epochs=2",
       "--config.log_every=3", "--config.seed=1"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      # One CPU device, as the command runs on the 2-core CPU (not the tests' eight).
      env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})


def test_pretrain_backbone_command(tiny_synthetic, tmp_path):
  output = str(tmp_path / "backbone")
  result = _run(tiny_synthetic, output)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert [line.split()[:2] for line in lines if line.startswith("step")] == [
      ["step", "3"], ["step", "6"]]
  assert lines[-1].startswith("val accuracy ") and lines[-1].endswith(f"wrote {output}")
  accuracy = float(lines[-1].split()[2])
  variables, spec = pretrained.load(output)
  assert (spec.depth, spec.width, spec.num_classes) == (18, 0.125, 4)
  assert spec.source == f"synthetic-pretrain:seed=1:steps=6:val_acc={accuracy:.2f}"
  assert variables["params"]["fc"]["kernel"].shape == (64, 4)
  assert np.abs(variables["batch_stats"]["bn1"]["mean"]).max() > 0  # trained statistics

  again = _run(tiny_synthetic, output)
  assert again.returncode != 0
  assert f"output {output} already exists" in again.stderr
