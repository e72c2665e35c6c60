"""predict: every item exactly once, in order, through padded batches sharded over 8 devices."""
import logging

import jax.numpy as jnp
import numpy as np
import pytest

from zsbir_jax import domains
from zsbir_jax import inference
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import source


def test_predict_returns_each_item_once_in_order(tiny_synthetic, monkeypatch, caplog):
  records = lists.load_split(tiny_synthetic, "synthetic").gallery  # 18 photos
  photos = source.RecordSource(records)
  config = augment.AugmentConfig(size=32)
  dataset = pipeline.eval_dataset(photos, 8, config)  # 3 batches, the last padded with 6
  mesh = sharding.make_mesh()
  monkeypatch.setattr(inference, "PROGRESS_SECONDS", 0.0)  # a progress line after every batch
  with caplog.at_level(logging.INFO):
    out = inference.predict(lambda x: jnp.mean(x, axis=(1, 2)), iter(dataset), mesh,
                            len(photos))
  progress = [r.getMessage().split(",")[0] for r in caplog.records if "predict:" in r.getMessage()]
  assert progress == ["predict: 8 / 18 items", "predict: 16 / 18 items", "predict: 18 / 18 items"]
  expected = np.stack([augment.preprocess(photos[i]["image"], domains.PHOTO, config).mean((0, 1))
                       for i in range(len(photos))])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_predict_detects_lost_items(tiny_synthetic):
  photos = source.RecordSource(lists.load_split(tiny_synthetic, "synthetic").gallery)
  batches = list(pipeline.eval_dataset(photos, 8, augment.AugmentConfig(size=32)))[:-1]
  with pytest.raises(RuntimeError, match="expected each of 18 items once, got 16"):
    inference.predict(lambda x: x[:, 0, 0], batches, sharding.make_mesh(), len(photos))
