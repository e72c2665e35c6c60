"""Training metrics to disk: JSON lines (`metrics.jsonl`) and TensorBoard event files.

Only process 0 writes; the other processes get a writer that does nothing. On resume from step
s the JSON lines after s are dropped, so the file holds each step once.
"""
import json
import os

import jax
import tensorboardX

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Writes `{name: scalar}` per step to `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    self._path = os.path.join(workdir, METRICS_FILE)
    if os.path.exists(self._path):
      with open(self._path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
      with open(self._path, "w") as f:
        f.writelines(kept)
    self._jsonl = open(self._path, "a")
    self._tensorboard = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                                                   purge_step=resume_step + 1)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self._active:
      return
    scalars = {k: float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)
    self._tensorboard.flush()

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tensorboard.close()
