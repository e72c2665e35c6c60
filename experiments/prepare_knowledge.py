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

from zsbir_jax import inference
from zsbir_jax import knowledge
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import source
from zsbir_jax.models import pretrained

_ROOT = flags.DEFINE_string("root", None, "Dataset root (holding e.g. Sketchy/).", required=True)
_SPLIT = flags.DEFINE_enum("split", None, sorted(lists.SPLITS), "Zero-shot split.", required=True)
_BACKBONE = flags.DEFINE_string("backbone", None, "Pretrained-backbone directory (the teacher).",
                                required=True)
_OUTPUT = flags.DEFINE_string("output", None, "The .npz table to write.", required=True)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input size of the teacher.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature T.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Data-loading worker processes.")


def prepare(root: str, split: str, backbone_dir: str, image_size: int, batch_size: int,
            temperature: float, workers: int = 0) -> knowledge.KnowledgeTable:
  """Runs the teacher over the split's training photos; returns the class-wise table."""
  data = lists.load_split(root, split)
  photos = [r for r in data.train if r.domain == lists.PHOTO]
  variables, spec = pretrained.load(backbone_dir)
  if not spec.num_classes:
    raise ValueError(f"backbone {backbone_dir} has no classifier (num_classes=0) to teach with")
  model = spec.model()
  photo_source = source.RecordSource(photos)
  mesh = sharding.make_mesh()
  dataset = pipeline.eval_dataset(photo_source, batch_size, augment.AugmentConfig(size=image_size),
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  variables = jax.device_put(variables, sharding.replicated(mesh))
  logits = inference.predict(lambda x: model.apply(variables, x, with_logits=True)[1],
                             pipeline.make_iterator(dataset, num_workers=workers), mesh,
                             len(photo_source))
  targets = knowledge.class_targets(logits, photo_source.labels, len(data.seen_classes),
                                    temperature)
  return knowledge.KnowledgeTable(targets=targets, class_names=tuple(data.seen_classes),
                                  teacher=spec.source, temperature=temperature)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  table = prepare(_ROOT.value, _SPLIT.value, _BACKBONE.value, _IMAGE_SIZE.value,
                  _BATCH_SIZE.value, _TEMPERATURE.value, _WORKERS.value)
  if jax.process_index() == 0:
    knowledge.save(_OUTPUT.value, table)
  logging.info("wrote %s: %d classes x %d teacher classes", _OUTPUT.value, *table.targets.shape)
  print(f"wrote {_OUTPUT.value}: {table.targets.shape[0]} classes x {table.targets.shape[1]} "
        f"teacher classes (teacher {table.teacher}, T={table.temperature})")


if __name__ == "__main__":
  app.run(main)
