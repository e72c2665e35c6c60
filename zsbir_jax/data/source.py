"""grain random-access sources of decoded images with their label and domain.

An element is a dict: `image` uint8 (H, W, 3) RGB, `label` int, `domain` int (domains.SKETCH or
domains.PHOTO) and `index`, its position in the source. `labels` and `domains` give every item's
class and domain without decoding, for the sampler. A missing or undecodable image raises
images.BadImageError naming its path.
"""
from collections.abc import Sequence

import numpy as np

from zsbir_jax.data import images
from zsbir_jax.data import lists


class RecordSource:
  """Items of parsed list Records, decoded with PIL on access."""

  def __init__(self, records: Sequence[lists.Record]):
    self._records = tuple(records)
    self.labels = np.array([r.label for r in self._records], dtype=np.int64)
    self.domains = np.array([r.domain for r in self._records], dtype=np.int64)

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict:
    record = self._records[index]
    return {"image": images.load_rgb(record.path), "label": record.label,
            "domain": record.domain, "index": index}

  def __repr__(self) -> str:
    return f"RecordSource(size={len(self)})"


class TfdsSource:
  """Items of a split written by zsbir_jax.data.tfds_builders, read with `tfds.data_source`.

  The stored bytes are the original image files; they are decoded here with images.decode_rgb,
  exactly as RecordSource decodes the files. tensorflow_datasets is imported only here.
  """

  def __init__(self, name: str, split: str, data_dir: str):
    """Opens split `split` ("train", "val", "query", "gallery", ...) of dataset `name`.

    Args:
      name: the TFDS dataset name with its config, e.g. "zsbir/sketchy25".
      split: the split to read.
      data_dir: the TFDS data directory the dataset was built into.
    """
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    self._name, self._split = name, split
    builder = tfds.builder(name, data_dir=data_dir)
    self._source = builder.as_data_source(
        split=split, decoders={"image": tfds.decode.SkipDecoding()})
    self.labels = np.asarray(builder.info.metadata["labels"][split], dtype=np.int64)
    self.domains = np.asarray(builder.info.metadata["domains"][split], dtype=np.int64)
    if len(self.labels) != len(self._source):
      raise ValueError(
          f"{name} split {split!r} in {data_dir}: metadata lists {len(self.labels)} items, "
          f"the records hold {len(self._source)}; rebuild the dataset")

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    example = self._source[index]
    name = f"{self._name}[{self._split}]:{example['path'].decode()}"
    return {"image": images.decode_rgb(example["image"], name),
            "label": int(example["label"]), "domain": int(example["domain"]), "index": index}

  def __repr__(self) -> str:
    return f"TfdsSource({self._name}, split={self._split}, size={len(self)})"
