"""data.source='tfds': a tiny split built as TFDS ArrayRecord files trains through the real
trainer and is evaluated from the build, and gives the 'files' source's batches exactly."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic as synthetic_config
from zsbir_jax.data import augment
from zsbir_jax.data import source
from zsbir_jax.data import tfds_builders
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import zero_shot
from zsbir_jax.method import knowledge
from zsbir_jax.models import pretrained
from zsbir_jax.training import setup as setup_lib
from zsbir_jax.training import trainer


@pytest.fixture(scope="module")
def tfds_dir(tiny_synthetic, tmp_path_factory) -> str:
  """The tiny synthetic split (6 seen / 3 unseen classes, 32 px) built into a TFDS data dir."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  tfds_builders.build("synthetic", tiny_synthetic, data_dir)
  return data_dir


def make_config(data_source: str, root: str, data_dir: str, recipe: str = "ce"):
  config = synthetic_config.get_config(f"recipe={recipe},runlocal")
  config.data.update(source=data_source, root=root if data_source == "files" else "",
                     tfds_data_dir=data_dir if data_source == "tfds" else "", check="off")
  return config


def test_the_same_seed_gives_the_same_augmented_batches_from_files_and_tfds(tiny_synthetic,
                                                                            tfds_dir):
  """Every value of the first 4 batches (the first epoch): the build stores the list files'
  bytes and both sources decode them with images.decode_rgb, so nothing may differ."""
  batches = {}
  for data_source in source.SOURCES:
    config = make_config(data_source, tiny_synthetic, tfds_dir)
    setup = setup_lib.prepare(config)
    iterator = trainer.train_iterator(config, setup)
    batches[data_source] = [next(iterator) for _ in range(4)]
  assert isinstance(setup.train_source, source.TfdsSource)
  for files, tfds in zip(batches["files"], batches["tfds"], strict=True):
    assert files.keys() == tfds.keys() == {"image", "label", "domain", "partner", "index"}
    for key in files:
      np.testing.assert_array_equal(files[key], tfds[key], err_msg=key)
  # Augmentation is on: items differ from their unaugmented (evaluation) preprocessing.
  first = batches["tfds"][0]
  plain = np.stack([augment.preprocess(setup.train_source[int(i)]["image"], int(d),
                                       setup.input_config)
                    for i, d in zip(first["index"], first["domain"])])
  assert not np.allclose(first["image"], plain)


def test_train_and_evaluate_from_a_tfds_build(tiny_synthetic, tfds_dir, tmp_path, capsys):
  """Knowledge, training (with the TFDS data check and the validation) and the zero-shot
  evaluation all read the build. That its evaluation batches equal the list files' is
  test_tfds_builders' test; here the paths that the embedding files record are checked."""
  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=4, source="test-backbone")
  backbone = str(tmp_path / "backbone")
  pretrained.save(backbone, spec.model().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))),
                  spec)
  config = make_config("tfds", tiny_synthetic, tfds_dir, recipe="eff")
  split = source.open_split(config.data)
  table = knowledge.prepare(split, backbone, 32, batch_size=16, temperature=1.0)
  assert table.class_names == split.seen_classes and table.targets.shape == (6, 4)
  np.testing.assert_allclose(table.targets.sum(axis=1), 1.0, rtol=1e-6)
  knowledge.save(str(tmp_path / "knowledge.npz"), table)

  config.data.check = "full"
  config.init.update(backbone=backbone, knowledge=str(tmp_path / "knowledge.npz"))
  config.train.log_every = 1
  workdir = str(tmp_path / "run")
  state = trainer.train_and_evaluate(config, workdir)
  assert int(state.step) == 4  # 1 epoch of 4 steps
  out = capsys.readouterr().out
  assert ("data check: full check of split synthetic (its TFDS build: metadata, classes, labels,"
          " counts and domains; every stored image decoded) passed in ") in out
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [l["step"] for l in lines if "loss" in l] == [1, 2, 3, 4]
  assert [l["step"] for l in lines if "val_accuracy" in l] == [4]

  sets = zero_shot.compute_embeddings(workdir, "best", split, 0, 16, 0, with_train_photos=True)
  files = source.open_split(make_config("files", tiny_synthetic, tfds_dir).data)
  for name, part in ((zero_shot.QUERY, files.query), (zero_shot.GALLERY, files.gallery)):
    assert sets[name].paths == tuple(os.path.relpath(p, tiny_synthetic) for p in part.paths)
    np.testing.assert_array_equal(sets[name].labels, part.labels)
  (_, real), (_, itq) = zero_shot.evaluate(sets, 16, list(metrics.DEFAULT_METRICS))
  assert 0 < real.metrics["map@all"] <= 1 and 0 < itq.metrics["map@all"] <= 1
