"""Inference shared by training, the method and evaluation: restore a run, predict over a source.

`load_model_variables` reads the model variables of a training run's checkpoint (the directory
names are the ones `training.checkpoint` writes). `predict_source` runs a model over every item
of a `data.source` source, in order, preprocessed for evaluation (no augmentation); `predict` is
its loop over an evaluation dataset: `pipeline.eval_dataset` (padded global batches with 'mask'
and 'index') sharded over the mesh's data axis, outputs gathered to every process, padding
dropped and the result checked to hold each source index exactly once.
"""
from collections.abc import Callable, Iterable
import os
import time
from typing import Any

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import pipeline

# A training run's checkpoint directories under its workdir (see training/checkpoint.py).
LATEST_DIR = "checkpoints"
BEST_DIR = "best"
# Seconds between progress lines of `predict` (a Sketchy-size gallery takes minutes to hours).
PROGRESS_SECONDS = 60.0


def predict(
    fn: Callable[[jax.Array], jax.Array],
    batches: Iterable[dict[str, np.ndarray]],
    mesh: jax.sharding.Mesh,
    num_items: int,
) -> np.ndarray:
  """Stacks fn(images) over all real items, ordered by source index.

  Args:
    fn: images (B, H, W, 3) -> outputs (B, ...); jitted here with the batch split over 'data'.
    batches: this process's batches of a `pipeline.eval_dataset`.
    mesh: the device mesh.
    num_items: the source's length.

  Returns:
    (num_items, ...) NumPy array; row i is fn of source item i.
  """
  @jax.jit
  def step(images, mask, index):
    return jax.lax.with_sharding_constraint(
        (fn(images), mask, index), sharding.replicated(mesh))

  outputs, indices = [], []
  done, start = 0, time.perf_counter()
  reported = start
  for batch in batches:
    batch = pipeline.to_global({k: batch[k] for k in ("image", "mask", "index")}, mesh)
    out, mask, index = jax.device_get(step(batch["image"], batch["mask"], batch["index"]))
    outputs.append(out[mask])
    indices.append(index[mask])
    done += int(mask.sum())
    now = time.perf_counter()
    if now - reported >= PROGRESS_SECONDS:
      reported, rate = now, done / (now - start)
      logging.info("predict: %d / %d items, %.1f items/s, %.0f s left", done, num_items, rate,
                   (num_items - done) / rate)
  if not outputs:
    raise ValueError("predict: the dataset yielded no batch")
  index = np.concatenate(indices)
  if len(index) != num_items or not np.array_equal(np.sort(index), np.arange(num_items)):
    raise RuntimeError(f"predict: expected each of {num_items} items once, got {len(index)} items "
                       f"covering {len(np.unique(index))} distinct indices")
  out = np.concatenate(outputs)
  result = np.empty_like(out)
  result[index] = out
  return result


def predict_source(
    apply: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    items,
    input_config: augment.AugmentConfig,
    batch_size: int,
    *,
    mesh: jax.sharding.Mesh | None = None,
    workers: int = 0,
) -> np.ndarray:
  """(N, ...) apply(variables, images) of every item of a source, row i of items[i].

  Args:
    apply: (variables, images (B, H, W, 3)) -> outputs (B, ...), e.g. a model's logits.
    variables: host arrays or global jax.Arrays; replicated over the mesh here.
    items: a source of `data.source` (a list of source.open_split, a RecordSource of image
      files, a Selection), preprocessed per domain as in evaluation (no augmentation).
    input_config: input size and sketch framing.
    batch_size: global batch size, a multiple of the mesh's devices; the last batch is padded.
    mesh: the device mesh (default: every device).
    workers: data-loading worker processes (0: threads of this process).
  """
  mesh = sharding.make_mesh() if mesh is None else mesh
  if batch_size % mesh.size:
    raise ValueError(f"batch size {batch_size} is not a multiple of the {mesh.size} devices")
  dataset = pipeline.eval_dataset(items, batch_size, input_config,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  variables = jax.device_put(variables, sharding.replicated(mesh))
  return predict(lambda x: apply(variables, x),
                 pipeline.make_iterator(dataset, num_workers=workers), mesh, len(items))


def load_model_variables(workdir: str, which: str = "best") -> tuple[dict[str, Any], int]:
  """({'params', 'batch_stats'} as NumPy, step) of a run's `which` ('best' or 'latest') state.

  For evaluation: needs no template, no optimizer and no data pipeline. Falls back from 'best'
  to 'latest' when the run has no best checkpoint yet.
  """
  for kind in ((BEST_DIR, LATEST_DIR) if which == "best" else (LATEST_DIR,)):
    directory = os.path.abspath(os.path.join(workdir, kind))
    if not os.path.isdir(directory):
      continue
    manager = ocp.CheckpointManager(directory,
                                    item_handlers={"state": ocp.StandardCheckpointHandler()})
    step = manager.best_step() if kind == BEST_DIR else manager.latest_step()
    if step is None:
      continue
    # Restore onto this process's first device, whatever mesh the run was saved from.
    device = jax.sharding.make_single_device_sharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          dict(manager.item_metadata(step)["state"]))
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    manager.close()
    variables = {"params": state["state"]["params"], "batch_stats": state["state"]["batch_stats"]}
    return jax.device_get(variables), step
  raise FileNotFoundError(f"no {which} checkpoint under {workdir}")
