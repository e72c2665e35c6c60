"""EFF's class-wise semantic knowledge (METHOD.md, loss 3): the teacher's table, made once.

t_c = mean over the training photos x of class c of softmax(teacher_logits(x) / T), a C x K
table (K = 1000 for an ImageNet teacher) written to disk with the class names, the teacher's
identity and T. `prepare` runs the pretrained teacher over a split's training photos (eval mode,
no augmentation, the input normalisation its directory records); training reads the table and
refuses one made for other classes.
"""
import dataclasses
import json

import numpy as np

from zsbir_jax import domains
from zsbir_jax import inference
from zsbir_jax.data import augment
from zsbir_jax.data import source
from zsbir_jax.models import pretrained


@dataclasses.dataclass(frozen=True)
class KnowledgeTable:
  """targets (C, K) float32 probabilities; class_names the C seen classes in label order."""
  targets: np.ndarray
  class_names: tuple[str, ...]
  teacher: str
  temperature: float


def class_targets(logits: np.ndarray, labels: np.ndarray, num_classes: int,
                  temperature: float) -> np.ndarray:
  """The (C, K) table from teacher logits (N, K) of N photos with labels (N,) in [0, C).

  Raises ValueError naming the classes without a photo (their target would be undefined).
  """
  z = logits.astype(np.float64) / temperature
  z -= z.max(axis=1, keepdims=True)
  probs = np.exp(z)
  probs /= probs.sum(axis=1, keepdims=True)
  counts = np.bincount(labels, minlength=num_classes)
  if (counts == 0).any():
    raise ValueError(f"classes without a training photo: {np.flatnonzero(counts == 0).tolist()}")
  sums = np.zeros((num_classes, logits.shape[1]))
  np.add.at(sums, labels, probs)
  return (sums / counts[:, None]).astype(np.float32)


def save(path: str, table: KnowledgeTable) -> None:
  """Writes the table as .npz (targets + JSON metadata)."""
  meta = {"class_names": list(table.class_names), "teacher": table.teacher,
          "temperature": table.temperature}
  with open(path, "wb") as f:
    np.savez(f, targets=table.targets, meta=np.asarray(json.dumps(meta)))


def load(path: str, class_names: list[str] | tuple[str, ...] | None = None) -> KnowledgeTable:
  """Reads a table; with `class_names`, refuses one made for other classes or another order."""
  with np.load(path) as data:
    targets = data["targets"]
    meta = json.loads(str(data["meta"]))
  table = KnowledgeTable(targets=targets, class_names=tuple(meta["class_names"]),
                         teacher=meta["teacher"], temperature=meta["temperature"])
  if class_names is not None and tuple(class_names) != table.class_names:
    theirs, ours = set(table.class_names), set(class_names)
    detail = (f"missing {sorted(ours - theirs)[:5]}, extra {sorted(theirs - ours)[:5]}"
              if theirs != ours else "same classes in another order")
    raise ValueError(f"knowledge table {path} was made for other classes than the split's "
                     f"({len(table.class_names)} vs {len(class_names)} classes; {detail})")
  return table


def prepare(split: source.Split, backbone_dir: str, image_size: int, batch_size: int,
            temperature: float, workers: int = 0) -> KnowledgeTable:
  """Runs the teacher over the split's training photos; returns the class-wise table.

  `split`: source.open_split of the config's data block (either data.source).
  """
  photos = source.Selection((split.train, np.flatnonzero(split.train.domains == domains.PHOTO)))
  variables, spec = pretrained.load(backbone_dir)
  if not spec.num_classes:
    raise ValueError(f"backbone {backbone_dir} has no classifier (num_classes=0) to teach with")
  model = spec.model()
  inputs = augment.AugmentConfig(size=image_size, input_mean=spec.input_mean,
                                 input_std=spec.input_std)
  logits = inference.predict_source(lambda v, x: model.apply(v, x, with_logits=True)[1],
                                    variables, photos, inputs, batch_size, workers=workers)
  targets = class_targets(logits, photos.labels, len(split.seen_classes), temperature)
  return KnowledgeTable(targets=targets, class_names=tuple(split.seen_classes),
                        teacher=spec.source, temperature=temperature)
