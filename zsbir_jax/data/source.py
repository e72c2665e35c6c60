"""grain random-access sources of decoded images with their label and domain; a split's sources.

An element is a dict: `image` uint8 (H, W, 3) RGB, `label` int, `domain` int (domains.SKETCH or
domains.PHOTO) and `index`, its position in the source. `labels`, `domains` and `paths` give
every item's class, domain and image path without decoding (for the sampler, the metrics and
the embedding files). A missing or undecodable image raises images.BadImageError naming its path.

`open_split(config.data)` is the one way a split is read, from the config's `data.source`:
'files' (the list files under `data.root`, lists.load_split) or 'tfds' (the ArrayRecord build of
zsbir_jax.data.tfds_builders in `data.tfds_data_dir`). Both give the same items in the same
order, decoded from the same image bytes by the same decoder (images.decode_rgb).
"""
from collections.abc import Sequence
import dataclasses

import numpy as np

from zsbir_jax.data import images
from zsbir_jax.data import lists

SOURCES = ("files", "tfds")
# The TFDS dataset that zsbir_jax.data.tfds_builders builds; its configs are the split names.
TFDS_NAME = "zsbir"


class RecordSource:
  """Items of parsed list Records, decoded with PIL on access."""

  def __init__(self, records: Sequence[lists.Record]):
    self._records = tuple(records)
    self.labels = np.array([r.label for r in self._records], dtype=np.int64)
    self.domains = np.array([r.domain for r in self._records], dtype=np.int64)
    self.paths = tuple(r.path for r in self._records)

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
  exactly as RecordSource decodes the files. `paths` are relative to the data root the dataset
  was built from; `classes` is the build's {'seen', 'unseen'[, 'pretrain']} class names.
  tensorflow_datasets is imported only here.
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
    self.paths = tuple(builder.info.metadata["paths"][split])
    self.classes = {k: tuple(v) for k, v in builder.info.metadata["classes"].items()}
    if not len(self.labels) == len(self.paths) == len(self._source):
      raise ValueError(
          f"{name} split {split!r} in {data_dir}: metadata lists {len(self.labels)} labels and "
          f"{len(self.paths)} paths, the records hold {len(self._source)}; rebuild the dataset")

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    example = self._source[index]
    name = f"{self._name}[{self._split}]:{example['path'].decode()}"
    return {"image": images.decode_rgb(example["image"], name),
            "label": int(example["label"]), "domain": int(example["domain"]), "index": index}

  def __repr__(self) -> str:
    return f"TfdsSource({self._name}, split={self._split}, size={len(self)})"


class Selection:
  """Chosen items of one or more sources, in order, as one source.

  `parts`: each a source (all of its items) or (source, indices). Lets one evaluation pass run
  over several lists (one compilation, one padded batch) or over a subset such as the photos.
  """

  def __init__(self, *parts):
    self._parts = [(p, np.arange(len(p))) if not isinstance(p, tuple)
                   else (p[0], np.asarray(p[1], np.int64)) for p in parts]
    self._part = np.concatenate([np.full(len(i), k) for k, (_, i) in enumerate(self._parts)])
    self._index = np.concatenate([i for _, i in self._parts])
    self.labels = np.concatenate([s.labels[i] for s, i in self._parts])
    self.domains = np.concatenate([s.domains[i] for s, i in self._parts])
    self.paths = tuple(s.paths[j] for s, i in self._parts for j in i)

  def __len__(self) -> int:
    return len(self._index)

  def __getitem__(self, index: int) -> dict:
    part, inner = self._parts[self._part[index]][0], int(self._index[index])
    return {**part[inner], "index": index}

  def __repr__(self) -> str:
    return f"Selection(size={len(self)}, parts={[repr(s) for s, _ in self._parts]})"


@dataclasses.dataclass(frozen=True)
class Split:
  """A zero-shot split's lists as sources (see lists.SplitData for what each holds).

  train and val are labelled by index into `seen_classes`, query and gallery into
  `unseen_classes`.
  """
  name: str
  train: RecordSource | TfdsSource
  val: RecordSource | TfdsSource
  query: RecordSource | TfdsSource
  gallery: RecordSource | TfdsSource
  seen_classes: tuple[str, ...]
  unseen_classes: tuple[str, ...]


def check_config(data) -> None:
  """Raises ValueError unless `data` (a config's data block) names a source and what it reads."""
  if data.source not in SOURCES:
    raise ValueError(f"data.source={data.source!r}: choose one of {SOURCES}")
  if not data.split:
    raise ValueError("set data.split")
  if data.source == "files" and not data.root:
    raise ValueError("data.source='files' reads the list files under data.root: set it")
  if data.source == "tfds" and not data.tfds_data_dir:
    raise ValueError("data.source='tfds' reads the build of tfds_builders.build in "
                     "data.tfds_data_dir: set it")


def open_split(data) -> Split:
  """The split `data.split` from `data.source`: the one place a config chooses the source.

  Args:
    data: a config's `data` block: `source` ('files' or 'tfds'), `split` (a name of
      lists.SPLITS), `root` (the data root, for 'files') and `tfds_data_dir` (the TFDS data
      directory the split was built into with tfds_builders.build, for 'tfds').

  Raises:
    ValueError: `check_config`'s errors, lists.load_split's for a malformed data root, and
      TfdsSource's for a build whose metadata and records disagree.
  """
  check_config(data)
  if data.source == "files":
    split = lists.load_split(data.root, data.split)
    return Split(data.split, *(RecordSource(r) for r in (split.train, split.val, split.query,
                                                          split.gallery)),
                 split.seen_classes, split.unseen_classes)
  parts = [TfdsSource(f"{TFDS_NAME}/{data.split}", part, data.tfds_data_dir)
           for part in ("train", "val", "query", "gallery")]
  classes = parts[0].classes
  return Split(data.split, *parts, classes["seen"], classes["unseen"])
