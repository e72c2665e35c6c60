"""Stored embeddings: the .npz round trip and its errors."""
import numpy as np
import pytest

from zsbir_jax import domains
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embeddings


def test_save_load_round_trip(tmp_path):
  identity = embeddings.ModelIdentity(workdir="/runs/a b", which="latest", step=3,
                                      spec={"depth": 50, "embed_dim": 4}, image_size=224,
                                      crop_sketch_to_ink=False)
  records = [lists.Record("/d/alarm clock/ü 1.png", 1, domains.SKETCH),
             lists.Record("/d/cup/2.jpg", 0, domains.PHOTO),
             lists.Record("/d/cup/3.JPEG", 0, domains.PHOTO)]
  z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
  stored = embeddings.from_source(source.RecordSource(records), z, ("cup", "alarm clock"),
                                  "tuberlin30", identity)
  path = str(tmp_path / "set.npz")
  embeddings.save(path, stored)
  loaded = embeddings.load(path)
  np.testing.assert_array_equal(loaded.embeddings, z)
  assert loaded.paths == tuple(r.path for r in records)
  np.testing.assert_array_equal(loaded.labels, [1, 0, 0])
  np.testing.assert_array_equal(loaded.domains, [domains.SKETCH, domains.PHOTO, domains.PHOTO])
  assert (loaded.class_names, loaded.split, loaded.model) == (
      ("cup", "alarm clock"), "tuberlin30", identity)
  assert len(loaded) == 3
  np.savez(str(tmp_path / "other.npz"), embeddings=z)
  with pytest.raises(ValueError, match=r"other.npz is not an embeddings file: missing \['domains'"):
    embeddings.load(str(tmp_path / "other.npz"))
