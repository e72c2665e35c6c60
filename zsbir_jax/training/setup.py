"""The set-up of a training run: everything the loop needs, built and checked before any compute.

`prepare(config)` reads the split (from `config.data.source`, source.open_split), the
pretrained backbone and the knowledge table, builds
the sampler, the model and the evaluators, and raises ConfigError on anything that cannot work,
so that a bad run fails in seconds and not after compilation. The backbone family and size are
the config's (`config.model`: backbone, depth, variant, width); a pretrained-backbone directory
must hold that architecture (a mismatch is a ConfigError, never a silent switch), and its
recorded input normalisation is the run's.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from zsbir_jax.data import augment
from zsbir_jax.data import check
from zsbir_jax.data import sampler as sampler_lib
from zsbir_jax.data import source
from zsbir_jax.method import knowledge
from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained
from zsbir_jax.models import retrieval
from zsbir_jax.training import evaluators


class ConfigError(ValueError):
  """A run that cannot work, found before any compute."""


@dataclasses.dataclass
class Setup:
  """Everything the loop needs, built and validated before any compute."""
  model: retrieval.RetrievalModel
  sampler: sampler_lib.PKSampler
  train_source: source.RecordSource | source.TfdsSource
  split: source.Split
  total_steps: int
  backbone: tuple[dict, pretrained.BackboneSpec] | None
  frozen: dict[str, np.ndarray]
  evaluators: dict[str, evaluators.Evaluator]
  # Input size, sketch framing and normalisation of training and evaluation: the normalisation
  # is the pretrained backbone's record (backbone.json), else its family's.
  input_config: augment.AugmentConfig
  data_check: check.Outcome | None  # None: data.check is "off"


def prepare(config, workdir: str | None = None) -> Setup:
  """Reads the split, the backbone and the knowledge table; raises ConfigError on any problem.

  A passed data check is remembered in `workdir` (check.check_once); None checks every time.
  """
  data_config = config.data
  global_batch = 2 * data_config.classes_per_batch * data_config.items_per_class
  if global_batch % jax.device_count():
    raise ConfigError(f"global batch 2 x P x K = {global_batch} (P={data_config.classes_per_batch}"
                      f", K={data_config.items_per_class}) is not divisible by the "
                      f"{jax.device_count()} devices")
  if data_config.check != "off" and data_config.check not in check.MODES:
    raise ConfigError(f"data.check={data_config.check!r}: choose 'off' or one of {check.MODES}")
  try:
    source.check_config(data_config)
    outcome = None if data_config.check == "off" else check.check_once(
        data_config, mode=data_config.check, record_dir=workdir,
        workers=data_config.check_workers)
  except ValueError as e:  # a bad data.source, a missing root or data directory
    raise ConfigError(str(e)) from e
  report = outcome and outcome.report
  if report is not None and report.problems:
    where = (data_config.root if data_config.source == "files" else
             f"TFDS build in {data_config.tfds_data_dir}")
    raise ConfigError(f"dataset {where} fails the check for split {data_config.split} "
                      f"({len(report.problems)} problems; run python -m experiments.check_dataset "
                      f"for the full report):\n  " + "\n  ".join(report.problems[:5]))
  try:
    split = source.open_split(data_config)
  except ValueError as e:  # a malformed data root or TFDS build
    raise ConfigError(str(e)) from e
  train_source = split.train
  try:
    sampler = sampler_lib.PKSampler(train_source.labels, train_source.domains,
                                    data_config.classes_per_batch, data_config.items_per_class,
                                    seed=config.seed)
  except ValueError as e:
    raise ConfigError(f"P x K sampling impossible for split {data_config.split}: {e}") from e

  model_config = config.model
  if model_config.backbone not in backbones.INPUT_NORMALIZATION:
    raise ConfigError(f"unknown --config.model.backbone={model_config.backbone!r}, expected one "
                      f"of {sorted(backbones.INPUT_NORMALIZATION)}")
  backbone = pretrained.load(config.init.backbone) if config.init.backbone else None
  num_teacher_classes = backbone[1].num_classes if backbone else config.init.num_teacher_classes
  if backbone:
    ours = architecture(model_config.backbone, model_config.depth, model_config.variant,
                        model_config.width)
    theirs = architecture(backbone[1].family, backbone[1].depth, backbone[1].variant,
                          backbone[1].width)
    if ours != theirs:
      raise ConfigError(f"backbone {config.init.backbone} is {theirs}, the config asks for "
                        f"{ours}: set --config.model.* to the backbone's (its backbone.json)")
    input_mean, input_std = backbone[1].input_mean, backbone[1].input_std
  else:
    input_mean, input_std = backbones.INPUT_NORMALIZATION[model_config.backbone]
  loss = config.loss
  frozen = {}
  if loss.skp.weight and loss.skp.targets == "classwise":
    if not config.init.knowledge or not os.path.isfile(config.init.knowledge):
      raise ConfigError(
          f"recipe {config.recipe} needs the class-wise knowledge table (--config.init.knowledge"
          f"={config.init.knowledge!r} is missing): run python -m experiments.prepare_knowledge")
    try:
      table = knowledge.load(config.init.knowledge, split.seen_classes)
    except ValueError as e:
      raise ConfigError(str(e)) from e
    if table.targets.shape[1] != num_teacher_classes:
      raise ConfigError(f"knowledge table has {table.targets.shape[1]} teacher classes, the "
                        f"teacher head {num_teacher_classes}")
    frozen["class_targets"] = table.targets
  if loss.skp.weight and loss.skp.targets == "online":
    if not backbone or not backbone[1].num_classes:
      raise ConfigError(f"recipe {config.recipe} (online knowledge targets) needs "
                        "--config.init.backbone with a classifier")
    frozen["imagenet_teacher"] = backbone[0]
  if config.recipe == "none" and not backbone:
    raise ConfigError("recipe none evaluates the pretrained backbone: set --config.init.backbone")

  model = retrieval.RetrievalModel(
      family=model_config.backbone, depth=model_config.depth, variant=model_config.variant,
      width=model_config.width, embed_dim=model_config.embed_dim,
      num_seen_classes=len(split.seen_classes), num_teacher_classes=num_teacher_classes,
      dtype=jnp.dtype(model_config.dtype), remat=model_config.remat)
  total_steps = 0 if config.recipe == "none" else config.optim.epochs * sampler.steps_per_epoch
  inputs = augment.AugmentConfig(size=data_config.image_size,
                                 crop_sketch_to_ink=data_config.crop_sketch_to_ink,
                                 input_mean=input_mean, input_std=input_std)
  try:
    evals = evaluators.build(config.evals, split, inputs, data_config.eval_batch_size,
                             sampler.steps_per_epoch)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  return Setup(model=model, sampler=sampler, train_source=train_source, split=split,
               total_steps=total_steps, backbone=backbone, frozen=frozen, evaluators=evals,
               input_config=inputs, data_check=outcome)


def architecture(family: str, depth: int, variant: int, width: float) -> str:
  """A backbone's name, e.g. 'ResNet-18 x0.25' or 'EfficientNet-Lite0 x1.0'."""
  if family == backbones.RESNET:
    return f"ResNet-{depth} x{width}"
  return f"EfficientNet-Lite{variant} x{width}"
