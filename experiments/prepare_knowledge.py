r"""Prepares EFF's class-wise semantic knowledge table for a split (before training).

  python -m experiments.prepare_knowledge --root=/data --split=sketchy25 \
      --backbone=ckpt/resnet50_imagenet --output=/data/sketchy25_knowledge.npz

Runs the pretrained teacher (backbone + its classifier) over the split's training photos in
eval mode without augmentation and writes t_c = mean softmax(logits / T) per seen class.
--source=tfds --tfds_data_dir=DIR reads the split's TFDS build instead of the list files (as
config.data.source and config.data.tfds_data_dir do in training).
"""
from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections

from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.method import knowledge

_SOURCE = flags.DEFINE_enum("source", "files", source.SOURCES, "Where the split is read: the "
                            "list files under --root, or its TFDS build in --tfds_data_dir.")
_ROOT = flags.DEFINE_string("root", "", "Dataset root (holding e.g. Sketchy/), for "
                            "--source=files.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "TFDS data directory of the split's "
                                     "build (zsbir_jax.data.tfds_builders), for --source=tfds.")
_SPLIT = flags.DEFINE_enum("split", None, sorted(lists.SPLITS), "Zero-shot split.", required=True)
_BACKBONE = flags.DEFINE_string("backbone", None, "Pretrained-backbone directory (the teacher).",
                                required=True)
_OUTPUT = flags.DEFINE_string("output", None, "The .npz table to write.", required=True)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input size of the teacher.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature T.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Data-loading worker processes.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  data = ml_collections.ConfigDict(dict(source=_SOURCE.value, root=_ROOT.value,
                                       split=_SPLIT.value, tfds_data_dir=_TFDS_DATA_DIR.value))
  try:
    split = source.open_split(data)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  table = knowledge.prepare(split, _BACKBONE.value, _IMAGE_SIZE.value, _BATCH_SIZE.value,
                            _TEMPERATURE.value, _WORKERS.value)
  if jax.process_index() == 0:
    knowledge.save(_OUTPUT.value, table)
  logging.info("wrote %s: %d classes x %d teacher classes", _OUTPUT.value, *table.targets.shape)
  print(f"wrote {_OUTPUT.value}: {table.targets.shape[0]} classes x {table.targets.shape[1]} "
        f"teacher classes (teacher {table.teacher}, T={table.temperature})")


if __name__ == "__main__":
  app.run(main)
