"""grain input pipelines: class-balanced augmented training batches, padded evaluation batches.

Both are grain `MapDataset`s of per-process batches (dicts of NumPy arrays) whose elements
depend only on their index, so the output is the same for any worker count; `make_iterator`
adds threads and worker processes, and its iterator's `get_state()` / `set_state()` give a
checkpointable position from which the same batches follow. `to_global` turns per-process
batches into global `jax.Array`s sharded over the "data" axis of a sharding.make_mesh mesh.

Multi-process: every global batch is split into process_count contiguous slices; process i
reads only slice i (per-process batch = global batch / process_count).

Training batch (per process, B = sampler.batch_size / process_count): `image` float32
(B, H, W, 3), `label`, `domain`, `partner` (position in the global batch of the same-class item
of the other domain, see sampler.PKSampler; absent with a ShuffleSampler) and `index` (source
index), all int32.
Evaluation batch: `image`, `label`, `domain`, `index` (position in the source) and `mask` (bool,
False on padding, where label and domain are -1 and the image is zeros).
"""
import grain
import jax
import numpy as np

from zsbir_jax import sharding as sharding_lib
from zsbir_jax.data import augment
from zsbir_jax.data import sampler as sampler_lib


def _process_batch(global_batch: int, process_count: int) -> int:
  if global_batch % process_count:
    raise ValueError(
        f"global batch {global_batch} is not divisible by the process count {process_count}")
  return global_batch // process_count


class _TrainItem:
  """Item j of a process's training stream: decoded, augmented and labelled."""

  def __init__(self, source, sampler, config: augment.AugmentConfig,
               seed: int, process_batch: int, offset: int):
    self._source, self._sampler, self._config = source, sampler, config
    self._seed, self._process_batch, self._offset = seed, process_batch, offset

  def __call__(self, j: int) -> dict[str, np.ndarray]:
    step, slot = divmod(j, self._process_batch)
    position = self._offset + slot
    index = int(self._sampler.batch(step)[position])
    item = self._source[index]
    params = augment.sample_params(augment.item_rng(self._seed, step, position), self._config)
    out = {"image": augment.preprocess(item["image"], item["domain"], self._config, params),
           "label": np.int32(item["label"]), "domain": np.int32(item["domain"]),
           "index": np.int32(index)}
    if self._sampler.partner is not None:
      out["partner"] = np.int32(self._sampler.partner[position])
    return out


def train_dataset(source, sampler: sampler_lib.PKSampler | sampler_lib.ShuffleSampler,
                  config: augment.AugmentConfig, *,
                  seed: int, num_epochs: int, process_index: int = 0,
                  process_count: int = 1) -> grain.MapDataset:
  """num_epochs * sampler.steps_per_epoch training batches for process `process_index`.

  Args:
    source: a random-access source (source.RecordSource or source.TfdsSource); `sampler` must
      have been built from its labels and domains.
    sampler: plans the global batches (a ShuffleSampler's batches have no 'partner').
    config: augmentation and input size.
    seed: augmentation seed; item (step, position) uses augment.item_rng(seed, step, position).
    num_epochs: length of the stream in epochs.
    process_index, process_count: this process's slice of every global batch.
  """
  process_batch = _process_batch(sampler.batch_size, process_count)
  item = _TrainItem(source, sampler, config, seed, process_batch, process_index * process_batch)
  length = num_epochs * sampler.steps_per_epoch * process_batch
  return grain.MapDataset.range(length).map(item).batch(process_batch, drop_remainder=True)


class _EvalItem:
  """Item j of a process's evaluation stream; positions past the source are padding."""

  def __init__(self, source, config: augment.AugmentConfig, global_batch: int,
               process_batch: int, offset: int):
    self._source, self._config = source, config
    self._global_batch, self._process_batch, self._offset = global_batch, process_batch, offset

  def __call__(self, j: int) -> dict[str, np.ndarray]:
    batch, slot = divmod(j, self._process_batch)
    position = batch * self._global_batch + self._offset + slot
    if position >= len(self._source):
      size = self._config.size
      return {"image": np.zeros((size, size, 3), np.float32), "label": np.int32(-1),
              "domain": np.int32(-1), "index": np.int32(position), "mask": np.bool_(False)}
    item = self._source[position]
    return {"image": augment.preprocess(item["image"], item["domain"], self._config),
            "label": np.int32(item["label"]), "domain": np.int32(item["domain"]),
            "index": np.int32(position), "mask": np.bool_(True)}


def eval_dataset(source, global_batch: int, config: augment.AugmentConfig, *,
                 process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  """Every item of `source` once, in order, in ceil(len / global_batch) padded global batches.

  Items are framed and resized as in training (without augmentation); concatenating the
  processes' batches in process order gives the global batch.
  """
  process_batch = _process_batch(global_batch, process_count)
  num_batches = -(-len(source) // global_batch)
  item = _EvalItem(source, config, global_batch, process_batch, process_index * process_batch)
  return grain.MapDataset.range(num_batches * process_batch).map(item).batch(process_batch)


def make_iterator(dataset: grain.MapDataset, *, num_workers: int = 0, num_threads: int = 2,
                  prefetch: int = 2) -> grain.DatasetIterator:
  """Iterates `dataset` with `num_threads` threads in each of `num_workers` processes.

  num_workers=0 works in this process. Workers take every num_workers-th batch and their
  outputs are interleaved back in order, so the batches do not depend on the worker count.
  `prefetch` is the number of batches buffered per process. The iterator's `get_state()` is a
  small dict to checkpoint; `set_state()` on a fresh iterator of the same dataset and worker
  count resumes with exactly the batches that followed.
  """
  read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  options = grain.MultiprocessingOptions(num_workers=num_workers,
                                         per_worker_buffer_size=prefetch)
  return iter(dataset.to_iter_dataset(read).mp_prefetch(options))


def to_global(batch: dict[str, np.ndarray],
              mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Assembles every process's batch into global arrays sharded along axis 0 over "data".

  `mesh` is a sharding.make_mesh mesh. The global batch is the concatenation of the processes'
  batches in process order; each process's rows go to its own devices of the mesh.
  """
  sharding = sharding_lib.batch_sharding(mesh)
  local_devices = len(sharding.addressable_devices)
  out = {}
  for key, value in batch.items():
    if value.shape[0] % local_devices:
      raise ValueError(
          f"per-process batch {value.shape[0]} of {key!r} is not divisible by this process's "
          f"{local_devices} devices of the mesh")
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out
