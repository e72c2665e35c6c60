"""RecordSource: decoded items, labels and domains without decoding, errors naming the path."""
import os

import numpy as np
from PIL import Image
import pytest

from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source


def test_record_source_decodes_rgb_items_in_list_order(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, size=(8, 9), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "a.png")
  Image.fromarray(gray).save(tmp_path / "b c.png")  # grayscale, a space in the name
  Image.fromarray(rgb).save(tmp_path / "d.JPEG", format="JPEG", quality=95)
  records = [lists.Record(str(tmp_path / "a.png"), 3, domains.PHOTO),
             lists.Record(str(tmp_path / "b c.png"), 1, domains.SKETCH),
             lists.Record(str(tmp_path / "d.JPEG"), 0, domains.PHOTO)]
  src = source.RecordSource(records)
  assert len(src) == 3 and repr(src) == "RecordSource(size=3)"
  np.testing.assert_array_equal(src.labels, [3, 1, 0])
  np.testing.assert_array_equal(src.domains, [domains.PHOTO, domains.SKETCH, domains.PHOTO])
  item = src[1]
  assert (item["label"], item["domain"], item["index"]) == (1, domains.SKETCH, 1)
  np.testing.assert_array_equal(item["image"], np.repeat(gray[..., None], 3, axis=2))
  np.testing.assert_array_equal(src[0]["image"], rgb)
  jpeg = np.asarray(Image.open(tmp_path / "d.JPEG").convert("RGB"))
  np.testing.assert_array_equal(src[2]["image"], jpeg)
  assert src[2]["image"].dtype == np.uint8


def test_missing_and_corrupt_files_are_errors_naming_the_path(tmp_path):
  corrupt = tmp_path / "corrupt.jpg"
  corrupt.write_bytes(b"\xff\xd8\xff not a jpeg")
  missing = os.path.join(tmp_path, "missing.png")
  src = source.RecordSource([lists.Record(missing, 0, domains.SKETCH),
                             lists.Record(str(corrupt), 0, domains.PHOTO)])
  with pytest.raises(images.BadImageError, match="missing.png"):
    src[0]
  with pytest.raises(images.BadImageError, match="corrupt.jpg"):
    src[1]
