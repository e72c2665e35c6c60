r"""Prepares EFF's class-wise semantic knowledge table for a split (before training).

  python -m experiments.prepare_knowledge --root=/data --split=sketchy25 \
      --backbone=ckpt/resnet50_imagenet --output=/data/sketchy25_knowledge.npz

Runs the pretrained teacher (backbone + its classifier) over the split's training photos in
eval mode without augmentation and writes t_c = mean softmax(logits / T) per seen class.
"""
from absl import app
from absl import flags
from absl import logging
import jax

from zsbir_jax.data import lists
from zsbir_jax.method import knowledge

_ROOT = flags.DEFINE_string("root", None, "Dataset root (holding e.g. Sketchy/).", required=True)
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
  table = knowledge.prepare(_ROOT.value, _SPLIT.value, _BACKBONE.value, _IMAGE_SIZE.value,
                            _BATCH_SIZE.value, _TEMPERATURE.value, _WORKERS.value)
  if jax.process_index() == 0:
    knowledge.save(_OUTPUT.value, table)
  logging.info("wrote %s: %d classes x %d teacher classes", _OUTPUT.value, *table.targets.shape)
  print(f"wrote {_OUTPUT.value}: {table.targets.shape[0]} classes x {table.targets.shape[1]} "
        f"teacher classes (teacher {table.teacher}, T={table.temperature})")


if __name__ == "__main__":
  app.run(main)
