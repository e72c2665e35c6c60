"""The training loop: one compiled update per class-balanced batch, checkpointed, validated.

`train_and_evaluate(config, workdir)` runs or resumes a run (see experiments/train.py for the
command line): `prepare` validates everything before any compute (ConfigError), the state starts
from a checkpoint in the workdir, a pretrained backbone or scratch, and the loop writes metrics,
validates on held-out seen-class sketches (which selects the best checkpoint; unseen classes
never do) and checkpoints the state with the data iterator's position, so that a killed run
resumes to exactly the parameters of an uninterrupted one.
"""
import dataclasses
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from zsbir_jax import inference
from zsbir_jax import sharding
from zsbir_jax.data import augment
from zsbir_jax.data import check
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import sampler as sampler_lib
from zsbir_jax.data import source
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import metrics as retrieval_metrics
from zsbir_jax.method import knowledge
from zsbir_jax.models import pretrained
from zsbir_jax.models import retrieval
from zsbir_jax.training import checkpoint
from zsbir_jax.training import metric_writer
from zsbir_jax.training import optim
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib


class ConfigError(ValueError):
  """A run that cannot work, found before any compute."""


@dataclasses.dataclass
class Setup:
  """Everything the loop needs, built and validated before any compute."""
  model: retrieval.RetrievalModel
  sampler: sampler_lib.PKSampler
  train_source: source.RecordSource
  val_source: source.RecordSource
  split: lists.SplitData
  total_steps: int
  backbone: tuple[dict, pretrained.BackboneSpec] | None
  frozen: dict[str, np.ndarray]


def log(message: str) -> None:
  """Logs on every process; prints on process 0 (progress for people)."""
  logging.info(message)
  if jax.process_index() == 0:
    print(message, flush=True)


def prepare(config) -> Setup:
  """Reads the split, the backbone and the knowledge table; raises ConfigError on any problem."""
  data_config = config.data
  if not data_config.root or not data_config.split:
    raise ConfigError("set --config.data.root and --config.data.split")
  global_batch = 2 * data_config.classes_per_batch * data_config.items_per_class
  if global_batch % jax.device_count():
    raise ConfigError(f"global batch 2 x P x K = {global_batch} (P={data_config.classes_per_batch}"
                      f", K={data_config.items_per_class}) is not divisible by the "
                      f"{jax.device_count()} devices")
  if data_config.check:
    report = check.check_split(data_config.root, data_config.split,
                               workers=data_config.check_workers)
    if report.problems:
      raise ConfigError(f"dataset root {data_config.root} fails the check for split "
                        f"{data_config.split} ({len(report.problems)} problems; run "
                        f"python -m experiments.check_dataset for the full report):\n  "
                        + "\n  ".join(report.problems[:5]))
  split = lists.load_split(data_config.root, data_config.split)
  train_source = source.RecordSource(split.train)
  try:
    sampler = sampler_lib.PKSampler(train_source.labels, train_source.domains,
                                    data_config.classes_per_batch, data_config.items_per_class,
                                    seed=config.seed)
  except ValueError as e:
    raise ConfigError(f"P x K sampling impossible for split {data_config.split}: {e}") from e

  backbone = pretrained.load(config.init.backbone) if config.init.backbone else None
  num_teacher_classes = backbone[1].num_classes if backbone else config.init.num_teacher_classes
  if backbone and (backbone[1].depth, backbone[1].width) != (config.model.depth,
                                                               config.model.width):
    raise ConfigError(f"backbone {config.init.backbone} is a ResNet-{backbone[1].depth} x"
                      f"{backbone[1].width}, the config asks for ResNet-{config.model.depth} x"
                      f"{config.model.width}")
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
      depth=config.model.depth, width=config.model.width, embed_dim=config.model.embed_dim,
      num_seen_classes=len(split.seen_classes), num_teacher_classes=num_teacher_classes,
      dtype=jnp.dtype(config.model.dtype), remat=config.model.remat)
  total_steps = 0 if config.recipe == "none" else config.optim.epochs * sampler.steps_per_epoch
  return Setup(model=model, sampler=sampler, train_source=train_source,
               val_source=source.RecordSource(split.val), split=split, total_steps=total_steps,
               backbone=backbone, frozen=frozen)


def validate(model, state, val_source, config, mesh) -> dict[str, float]:
  """Seen-class accuracy on the held-out seen sketches (selects the best checkpoint)."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  dataset = pipeline.eval_dataset(
      val_source, config.data.eval_batch_size, augment_config(config),
      process_index=jax.process_index(), process_count=jax.process_count())
  logits = inference.predict(lambda x: model.apply(variables, x)[1], iter(dataset), mesh,
                             len(val_source))
  return {checkpoint.BEST_METRIC: float(np.mean(logits.argmax(-1) == val_source.labels))}


def unseen_retrieval(model, state, split, config, mesh) -> dict[str, float]:
  """mAP@all of unseen sketches against unseen photos: for monitoring only, never selection."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  embed = lambda records: embeddings.embed_records(model, variables, records,
                                                   augment_config(config),
                                                   config.data.eval_batch_size, mesh=mesh)
  result = retrieval_metrics.evaluate(embed(split.query), [r.label for r in split.query],
                            embed(split.gallery), [r.label for r in split.gallery],
                            metrics=("map@all",))
  return {"unseen_map_all": result.metrics["map@all"]}


def augment_config(config) -> augment.AugmentConfig:
  return augment.AugmentConfig(size=config.data.image_size,
                               crop_sketch_to_ink=config.data.crop_sketch_to_ink)


def check_finite(step: int, metrics: dict[str, float]) -> None:
  """Stops the run on a NaN or inf loss, naming the step and the terms."""
  bad = {k: v for k, v in metrics.items() if k.startswith("loss") and not math.isfinite(v)}
  if bad:
    raise FloatingPointError(
        f"non-finite loss at step {step}: {bad}; stopping (the last checkpoint is untouched)")


def progress_line(step: int, total: int, steps_per_epoch: int, metrics: dict[str, float],
                  seconds_per_step: float, batch_size: int) -> str:
  eta = (total - step) * seconds_per_step
  terms = " ".join(f"{k[5:]} {v:.4f}" for k, v in metrics.items() if k.startswith("loss_"))
  return (f"step {step}/{total} epoch {step / steps_per_epoch:.2f} loss {metrics['loss']:.4f} "
          f"({terms}) acc {metrics['accuracy']:.3f} lr {metrics['learning_rate']:.2e} "
          f"{batch_size / seconds_per_step:.1f} img/s ETA {int(eta // 60)}m{int(eta % 60):02d}s")


def train_and_evaluate(config, workdir: str) -> train_state.TrainState:
  """Runs (or resumes) training in `workdir`; returns the final state."""
  os.makedirs(workdir, exist_ok=True)
  setup = prepare(config)
  model, sampler = setup.model, setup.sampler
  if jax.process_index() == 0:
    retrieval.save_spec(model, workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  log(f"{jax.process_count()} processes, {jax.device_count()} devices; "
      f"{len(setup.train_source)} training items, {sampler}, {setup.total_steps} steps")

  mesh = sharding.make_mesh()
  optimizer = optim.make_optimizer(config.optim, sampler.steps_per_epoch)
  schedule = optim.learning_rate_schedule(config.optim, sampler.steps_per_epoch)
  # The fresh state on the host: where a new run starts, and the template a resumed run
  # restores into.
  initial_state = train_state.create(
      model, optimizer, jax.random.PRNGKey(config.seed), config.data.image_size,
      pretrained_backbone=setup.backbone[0] if setup.backbone else None,
      with_teacher=bool(config.loss.kd.weight), frozen=setup.frozen)
  state_shardings = sharding.state_shardings(initial_state, mesh, config.sharding.fsdp_min_size)
  imagenet_teacher = setup.backbone[1].model() if setup.backbone else None
  step_fn = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(model, optimizer, config.loss, imagenet_teacher),
      mesh, state_shardings)

  dataset = pipeline.train_dataset(
      setup.train_source, sampler, augment_config(config), seed=config.seed,
      num_epochs=max(config.optim.epochs, 1), process_index=jax.process_index(),
      process_count=jax.process_count())
  iterator = pipeline.make_iterator(dataset, num_workers=config.data.workers,
                                    num_threads=config.data.threads,
                                    prefetch=config.data.prefetch)
  checkpoints = checkpoint.Checkpoints(workdir, keep=config.train.keep_checkpoints)
  first_step = checkpoints.latest_step()
  if first_step is not None:
    abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                            initial_state, state_shardings)
    state = checkpoints.restore(first_step, abstract, iterator)
    log(f"start: resuming from the checkpoint of step {first_step} in {workdir}")
  else:
    first_step = 0
    state = sharding.put_global(initial_state, state_shardings)
    log(f"start: from the pretrained backbone {config.init.backbone}" if setup.backbone else
        "start: from scratch (random initialisation)")
  writer = metric_writer.MetricWriter(workdir, resume_step=first_step)

  eval_every = config.train.eval_every_epochs * sampler.steps_per_epoch
  timer_step, timer = first_step, time.perf_counter()
  for step in range(first_step + 1, setup.total_steps + 1):
    batch = pipeline.to_global(next(iterator), mesh)
    batch.pop("index")
    state, metrics = step_fn(state, batch)
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    check_finite(step, metrics)
    metrics["learning_rate"] = float(schedule(step - 1))
    if step % config.train.log_every == 0 or step == setup.total_steps:
      now = time.perf_counter()
      seconds_per_step = (now - timer) / (step - timer_step)
      timer_step, timer = step, now
      metrics["images_per_second"] = sampler.batch_size / seconds_per_step
      writer.write(step, metrics)
      log(progress_line(step, setup.total_steps, sampler.steps_per_epoch, metrics,
                        seconds_per_step, sampler.batch_size))
    if eval_every and (step % eval_every == 0 or step == setup.total_steps):
      val = validate(model, state, setup.val_source, config, mesh)
      writer.write(step, val)
      improved = checkpoints.save_best(step, state, val)
      log(f"step {step}: validation {val}" + (" (best so far)" if improved else ""))
    retrieval_every = config.train.retrieval_every_epochs * sampler.steps_per_epoch
    if retrieval_every and (step % retrieval_every == 0 or step == setup.total_steps):
      unseen = unseen_retrieval(model, state, setup.split, config, mesh)
      writer.write(step, unseen)
      log(f"step {step}: unseen-class retrieval (monitoring only) {unseen}")
    if step % config.train.checkpoint_every == 0 or step == setup.total_steps:
      checkpoints.save(step, state, iterator)
  if setup.total_steps == 0:  # recipe none: the pretrained model, evaluated as is
    checkpoints.save(0, state, iterator)
    checkpoints.save_best(0, state, validate(model, state, setup.val_source, config, mesh))
  writer.close()
  checkpoints.close()
  log(f"done: {setup.total_steps} steps in {workdir}")
  return state
