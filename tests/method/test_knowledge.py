"""Class-wise knowledge tables: the mean of softmax per class, saved and checked against a split."""
import numpy as np
import pytest

from zsbir_jax.method import knowledge


def test_class_targets_equal_a_plain_loop():
  rng = np.random.default_rng(0)
  logits, labels = rng.normal(size=(20, 7)) * 3, rng.integers(0, 4, 20)
  labels[:4] = np.arange(4)
  table = knowledge.class_targets(logits.astype(np.float32), labels, 4, temperature=2.0)
  for c in range(4):
    rows = [np.exp(l / 2.0) / np.exp(l / 2.0).sum() for l, y in zip(logits, labels) if y == c]
    np.testing.assert_allclose(table[c], np.mean(rows, axis=0), rtol=1e-6)
  np.testing.assert_allclose(table.sum(1), 1.0, rtol=1e-6)


def test_class_without_photo_is_an_error():
  with pytest.raises(ValueError, match=r"classes without a training photo: \[2\]"):
    knowledge.class_targets(np.zeros((3, 5)), np.array([0, 1, 3]), 4, 1.0)


def test_save_load_and_class_check(tmp_path):
  table = knowledge.KnowledgeTable(np.full((2, 3), 1 / 3, np.float32), ("cat", "dog"),
                                   "torchvision:r50.pth", 1.0)
  path = str(tmp_path / "t.npz")
  knowledge.save(path, table)
  loaded = knowledge.load(path, ["cat", "dog"])
  np.testing.assert_array_equal(loaded.targets, table.targets)
  assert (loaded.class_names, loaded.teacher, loaded.temperature) == (
      table.class_names, table.teacher, table.temperature)
  with pytest.raises(ValueError, match=r"missing \['cow'\], extra \['dog'\]"):
    knowledge.load(path, ["cat", "cow"])
  with pytest.raises(ValueError, match="another order"):
    knowledge.load(path, ["dog", "cat"])
