"""Training and evaluation pipelines: batch structure, per-item reproducibility, worker-count
independence, iterator save/restore, multi-process slicing, global arrays on 8 devices and
eval padding."""
from absl import flags
import jax
import numpy as np
from PIL import Image
import pytest

from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import sampler as sampler_lib
from zsbir_jax.data import source
from zsbir_jax.domains import PHOTO, SKETCH

CONFIG = augment.AugmentConfig(size=16)
P, K = 2, 2


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[lists.Record]:
  """5 classes with 3-5 sketches (PNG) and 4-6 photos (JPEG) each, 24 x 20 px."""
  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  out = []
  for c in range(5):
    for domain, count, ext in ((SKETCH, 3 + c % 3, "png"), (PHOTO, 4 + c % 3, "jpg")):
      for i in range(count):
        path = str(root / f"{c}_{domain}_{i}.{ext}")
        Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(path)
        out.append(lists.Record(path, c, domain))
  return out


@pytest.fixture(scope="module")
def src(records) -> source.RecordSource:
  return source.RecordSource(records)


@pytest.fixture(scope="module")
def sampler(src) -> sampler_lib.PKSampler:
  return sampler_lib.PKSampler(src.labels, src.domains, P, K, seed=0)


def _take(iterator, n: int) -> list[dict[str, np.ndarray]]:
  return [{k: np.array(v) for k, v in next(iterator).items()} for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_training_batches_follow_the_sampler_and_the_per_item_augmentation(src, sampler):
  ds = pipeline.train_dataset(src, sampler, CONFIG, seed=7, num_epochs=2)
  assert len(ds) == 2 * sampler.steps_per_epoch
  batches = _take(pipeline.make_iterator(ds), len(ds))
  for step, batch in enumerate(batches):
    assert batch["image"].shape == (2 * P * K, 16, 16, 3) and batch["image"].dtype == np.float32
    assert all(batch[k].dtype == np.int32 for k in ("label", "domain", "partner", "index"))
    np.testing.assert_array_equal(batch["index"], sampler.batch(step))
    np.testing.assert_array_equal(batch["label"], src.labels[batch["index"]])
    np.testing.assert_array_equal(batch["domain"], src.domains[batch["index"]])
    np.testing.assert_array_equal(batch["partner"], sampler.partner)
  # Every image is its source image under the augmentation keyed by (seed, step, position).
  step = sampler.steps_per_epoch + 1
  for position in range(2 * P * K):
    item = src[int(batches[step]["index"][position])]
    params = augment.sample_params(augment.item_rng(7, step, position), CONFIG)
    np.testing.assert_array_equal(
        batches[step]["image"][position],
        augment.preprocess(item["image"], item["domain"], CONFIG, params))
  # Epochs reshuffle.
  first = np.stack([b["index"] for b in batches[:sampler.steps_per_epoch]])
  second = np.stack([b["index"] for b in batches[sampler.steps_per_epoch:]])
  assert not np.array_equal(first, second)


def test_same_batches_for_any_thread_and_worker_count_and_after_restore(src, sampler):
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
  ds = pipeline.train_dataset(src, sampler, CONFIG, seed=1, num_epochs=1)
  reference = _take(pipeline.make_iterator(ds, num_threads=0), 6)
  _assert_batches_equal(_take(pipeline.make_iterator(ds, num_threads=3), 6), reference)
  it = pipeline.make_iterator(ds, num_workers=2)
  _assert_batches_equal(_take(it, 2), reference[:2])
  state = it.get_state()
  _assert_batches_equal(_take(it, 4), reference[2:])
  it.close()
  restored = pipeline.make_iterator(ds, num_workers=2)
  restored.set_state(state)
  _assert_batches_equal(_take(restored, 4), reference[2:])
  restored.close()


def test_restore_in_process_replays_the_following_batches_across_epochs(src, sampler):
  ds = pipeline.train_dataset(src, sampler, CONFIG, seed=2, num_epochs=3)
  it = pipeline.make_iterator(ds)
  _take(it, sampler.steps_per_epoch - 1)
  state = it.get_state()
  expected = _take(it, 3)  # crosses into the second epoch
  restored = pipeline.make_iterator(ds)
  restored.set_state(state)
  _assert_batches_equal(_take(restored, 3), expected)


def test_two_processes_read_disjoint_slices_of_the_global_batch(src, sampler):
  full = _take(pipeline.make_iterator(
      pipeline.train_dataset(src, sampler, CONFIG, seed=3, num_epochs=1)), 3)
  hosts = [_take(pipeline.make_iterator(pipeline.train_dataset(
      src, sampler, CONFIG, seed=3, num_epochs=1, process_index=i, process_count=2)), 3)
           for i in range(2)]
  for step in range(3):
    assert hosts[0][step]["image"].shape[0] == hosts[1][step]["image"].shape[0] == P * K
    joined = {k: np.concatenate([hosts[0][step][k], hosts[1][step][k]]) for k in full[step]}
    _assert_batches_equal([joined], [full[step]])
  with pytest.raises(ValueError, match="not divisible by the process count 3"):
    pipeline.train_dataset(src, sampler, CONFIG, seed=3, num_epochs=1, process_count=3)


def test_global_arrays_are_sharded_over_8_devices(src, sampler):
  devices = jax.devices()
  assert len(devices) == 8
  mesh = sharding.make_mesh(devices)
  host = _take(pipeline.make_iterator(pipeline.eval_dataset(src, 16, CONFIG)), 1)[0]
  batch = pipeline.to_global(host, mesh)
  assert batch["image"].shape == (16, 16, 16, 3) and batch["mask"].dtype == np.bool_
  for key, array in batch.items():
    assert array.sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(array.addressable_shards) == 8
    for shard in array.addressable_shards:
      rows = shard.index[0]
      assert (rows.stop - rows.start) == 2
      assert shard.device == mesh.devices[rows.start // 2]
      np.testing.assert_array_equal(np.asarray(shard.data), host[key][rows])
  with pytest.raises(ValueError, match="not divisible by this process's 8 devices"):
    pipeline.to_global({"label": np.zeros(12, np.int32)}, mesh)


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_yields_every_item_once_in_order_padded_with_a_mask(src, process_count):
  n = len(src)
  global_batch = 8
  hosts = [_take(pipeline.make_iterator(pipeline.eval_dataset(
      src, global_batch, CONFIG, process_index=i, process_count=process_count)),
                 -(-n // global_batch)) for i in range(process_count)]
  batches = [{k: np.concatenate([h[b][k] for h in hosts]) for k in hosts[0][b]}
             for b in range(len(hosts[0]))]
  index = np.concatenate([b["index"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(index, np.arange(len(batches) * global_batch))
  np.testing.assert_array_equal(mask, index < n)
  assert (~mask).sum() == -n % global_batch > 0
  labels = np.concatenate([b["label"] for b in batches])
  domains = np.concatenate([b["domain"] for b in batches])
  np.testing.assert_array_equal(labels[mask], src.labels)
  np.testing.assert_array_equal(domains[mask], src.domains)
  assert (labels[~mask] == -1).all() and (domains[~mask] == -1).all()
  images_out = np.concatenate([b["image"] for b in batches])
  assert (images_out[~mask] == 0).all()
  for i in (0, n - 1):
    item = src[i]
    np.testing.assert_array_equal(images_out[i],
                                  augment.preprocess(item["image"], item["domain"], CONFIG))


def test_a_bad_file_stops_the_pipeline_naming_its_path(records):
  broken = list(records)
  broken[3] = broken[3]._replace(path=broken[3].path + ".gone")
  ds = pipeline.eval_dataset(source.RecordSource(broken), 4, CONFIG)
  with pytest.raises(images.BadImageError, match=r"\.gone"):
    _take(pipeline.make_iterator(ds), 1)


def test_shuffled_stream_reads_fresh_permutations_with_sake_augmentation(tiny_synthetic):
  records = lists.load_pretrain(tiny_synthetic).train  # 24 photos
  photos = source.RecordSource(records)
  config = augment.AugmentConfig(size=32)
  batches = list(pipeline.train_dataset(photos, sampler_lib.ShuffleSampler(len(photos), 10, 3),
                                        config, seed=3, num_epochs=2))
  assert len(batches) == 4  # 2 full batches per epoch, 4 photos left out
  for epoch in range(2):
    index = np.concatenate([b["index"] for b in batches[2 * epoch:2 * epoch + 2]])
    expected = np.random.default_rng((3, 0, epoch)).permutation(24)[:20]
    np.testing.assert_array_equal(index, expected)
  assert not np.array_equal(batches[0]["index"], batches[2]["index"])
  step, position = 3, 7
  i = int(batches[step]["index"][position])
  params = augment.sample_params(augment.item_rng(3, step, position), config)
  reference = augment.preprocess(images.load_rgb(records[i].path), PHOTO, config,
                                 params)
  np.testing.assert_array_equal(batches[step]["image"][position], reference)
  assert batches[step]["label"][position] == records[i].label

  halves = [list(pipeline.train_dataset(photos, sampler_lib.ShuffleSampler(len(photos), 10, 3),
                                        config, seed=3, num_epochs=2, process_index=p,
                                        process_count=2)) for p in (0, 1)]
  for whole, first, second in zip(batches, *halves):
    for key in whole:
      np.testing.assert_array_equal(whole[key], np.concatenate([first[key], second[key]]))
  with pytest.raises(ValueError, match="batch size 32 exceeds the 24 training photos"):
    sampler_lib.ShuffleSampler(len(photos), 32, 0)
