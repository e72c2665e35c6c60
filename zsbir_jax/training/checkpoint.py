"""Orbax checkpoints of a training run: the whole train state plus the data iterator's position.

`<workdir>/checkpoints/<step>/` keeps the last `keep` checkpoints for resuming; `<workdir>/best/`
keeps the one with the best validation metric (the names are `inference.LATEST_DIR` and
`BEST_DIR`: evaluation reads them without this module). Each step directory holds `state` (the
`TrainState`, every array) and `data` (the grain iterator state, one JSON per process). Orbax
writes a step to a temporary directory and renames it when complete, so a run killed at any
moment, also during a save, leaves only complete checkpoints to resume from. All processes call
`save` and `restore` together; orbax coordinates them.
"""
import os
from typing import Any

import grain
import orbax.checkpoint as ocp

from zsbir_jax import inference

BEST_METRIC = "val_accuracy"


def _manager(directory: str, options: ocp.CheckpointManagerOptions,
             with_data: bool) -> ocp.CheckpointManager:
  handlers = {"state": ocp.StandardCheckpointHandler()}
  if with_data:
    handlers["data"] = grain.checkpoint.CheckpointHandler()
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_handlers=handlers)


class Checkpoints:
  """The latest-k and best checkpoints of the run in `workdir`."""

  def __init__(self, workdir: str, keep: int):
    self.latest = _manager(
        os.path.join(workdir, inference.LATEST_DIR),
        ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                     enable_async_checkpointing=False),
        with_data=True)
    self.best = _manager(
        os.path.join(workdir, inference.BEST_DIR),
        ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=lambda m: m[BEST_METRIC],
                                     best_mode="max", enable_async_checkpointing=False),
        with_data=False)

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self.latest.latest_step()

  def save(self, step: int, state: Any, iterator: grain.DatasetIterator) -> None:
    """Saves state and iterator position as `step` (a no-op if `step` is already saved)."""
    if step in self.latest.all_steps():
      return
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)))

  def restore(self, step: int, abstract_state: Any,
              iterator: grain.DatasetIterator) -> Any:
    """The state saved at `step`, laid out like `abstract_state`; moves `iterator` there too."""
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(iterator)))
    return restored["state"]

  def save_best(self, step: int, state: Any, metrics: dict[str, float]) -> bool:
    """Keeps `state` if metrics[BEST_METRIC] beats the best so far; returns whether it did."""
    best = self.best.best_step()
    if best is not None:
      if metrics[BEST_METRIC] <= self.best.metrics(best)[BEST_METRIC]:
        return False
    self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                   metrics={BEST_METRIC: float(metrics[BEST_METRIC])})
    return True

  def close(self) -> None:
    self.latest.close()
    self.best.close()
