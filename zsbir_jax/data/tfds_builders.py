"""TensorFlow Datasets builder of the zero-shot splits, written as ArrayRecord files.

One builder, `zsbir`, with a config per split of lists.SPLITS ("sketchy25", "sketchy21",
"tuberlin30", "quickdraw30", "synthetic"). The data are a manual download: `manual_dir` is the
data root that lists.load_split reads (holding Sketchy/, TUBerlin/, QuickDraw/ or Synthetic/).
TFDS splits: "train" (seen sketches and photos), "val" (held-out seen sketches), "query"
(unseen sketches), "gallery" (unseen photos), and for the synthetic split "pretrain_train" and
"pretrain_val" (its photo-only pretraining set). Examples keep the list order (index i of a
split is item i of its list) and store the original image file bytes, the label, the domain
and the path relative to the root; every image is decoded once while building, so a bad file
fails the build naming its path. The dataset metadata holds the class names and every split's
labels, domains and paths, which source.TfdsSource gives the sampler, the metrics and the
embedding files without reading the records. Train from a build with config.data.source='tfds'
and config.data.tfds_data_dir (source.open_split).

Building needs tensorflow and tensorflow_datasets (the `tfds` extra); reading them back with
`tfds.data_source` does not run TensorFlow.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source


class Zsbir(tfds.core.GeneratorBasedBuilder):
  """The zero-shot SBIR splits of lists.SPLITS, one builder config each."""

  name = source.TFDS_NAME

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Original image bytes, label, domain and path; list order.",
                   "1.1.0": "Every split's paths in the metadata."}
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=spec.name, description=spec.description)
                     for spec in lists.SPLITS.values()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Set manual_dir to the data root holding the dataset directory of the split in the SAKE "
      "layout (Sketchy/, TUBerlin/, QuickDraw/; see data/README.md), or the root written by "
      "experiments.make_synthetic for the synthetic split.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.Scalar(np.int64),
            "domain": tfds.features.ClassLabel(names=["sketch", "photo"]),
            "path": tfds.features.Text(),
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.fspath(dl_manager.manual_dir)
    name = self.builder_config.name
    data = lists.load_split(root, name)
    splits = {"train": data.train, "val": data.val, "query": data.query,
              "gallery": data.gallery}
    classes = {"seen": list(data.seen_classes), "unseen": list(data.unseen_classes)}
    if lists.get_split(name).pretrain is not None:
      pretrain = lists.load_pretrain(root, name)
      splits.update(pretrain_train=pretrain.train, pretrain_val=pretrain.val)
      classes["pretrain"] = list(pretrain.classes)
    self.info.metadata.update(
        classes=classes,
        labels={split: [r.label for r in records] for split, records in splits.items()},
        domains={split: [r.domain for r in records] for split, records in splits.items()},
        paths={split: [os.path.relpath(r.path, root) for r in records]
               for split, records in splits.items()})
    return {split: self._generate_examples(records, root) for split, records in splits.items()}

  def _generate_examples(self, records: tuple[lists.Record, ...], root: str):
    for i, record in enumerate(records):
      try:
        with open(record.path, "rb") as f:
          data = f.read()
      except OSError as e:
        raise images.BadImageError(record.path, f"{type(e).__name__}: {e.strerror or e}") from e
      images.decode_rgb(data, record.path)
      yield i, {"image": data, "label": record.label, "domain": record.domain,
                "path": os.path.relpath(record.path, root)}


def build(split: str, root: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """Builds config `split` of the zsbir dataset from data root `root` into `data_dir`.

  Read it back with source.open_split (data.source='tfds', data.tfds_data_dir=data_dir).
  """
  builder = Zsbir(config=split, data_dir=data_dir)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=root))
  return builder
