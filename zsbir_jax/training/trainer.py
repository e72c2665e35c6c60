"""The training loop: one compiled update per class-balanced batch, checkpointed, evaluated.

`train_and_evaluate(config, workdir)` runs or resumes a run (see experiments/train.py for the
command line): `setup.prepare` checks everything before any compute (ConfigError), the state
starts from a checkpoint in the workdir, a pretrained backbone or scratch, and the loop writes
metrics, runs the config's evaluators on their schedules (the seen-class one selects the best
checkpoint; unseen classes never do) and checkpoints the state with the data iterator's
position, so that a killed run resumes to exactly the parameters of an uninterrupted one.
"""
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp

from zsbir_jax import sharding
from zsbir_jax.data import pipeline
from zsbir_jax.models import retrieval
from zsbir_jax.training import checkpoint
from zsbir_jax.training import metric_writer
from zsbir_jax.training import optim
from zsbir_jax.training import setup as setup_lib
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib


def log(message: str) -> None:
  """Logs on every process; prints on process 0 (progress for people)."""
  logging.info(message)
  if jax.process_index() == 0:
    print(message, flush=True)


def check_finite(window: list[tuple[int, dict[str, float]]]) -> None:
  """Stops the run on a NaN or inf loss among `window`'s (step, metrics), checked together.

  Names the first bad step and the range it was found in: metrics stay on the devices until
  they are needed (`PendingMetrics`), so a bad step is found at the next check, not at once.
  """
  for step, metrics in window:
    bad = {k: v for k, v in metrics.items() if k.startswith("loss") and not math.isfinite(v)}
    if bad:
      raise FloatingPointError(
          f"non-finite loss at step {step} (found checking steps {window[0][0]}-"
          f"{window[-1][0]}): {bad}; stopping (the last checkpoint is untouched)")


@jax.jit
def all_finite(tree) -> jax.Array:
  """Whether every floating-point value of `tree` is finite: one scalar, reduced on the devices."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.inexact)]))


def check_finite_state(state: train_state.TrainState, step: int, since: int) -> None:
  """Stops the run before a save of a state with a NaN or inf (`since`: the last state checked).

  A finite loss at step s does not prove the update of step s finite (an overflowing gradient or
  learning rate); this looks at the state itself before it is written.
  """
  if not bool(all_finite(state)):
    raise FloatingPointError(
        f"non-finite values in the state of step {step}, from an update of steps {since + 1}-"
        f"{step} (their losses were finite); stopping without saving it (the last checkpoint is "
        "untouched)")


class PendingMetrics:
  """Per-step metrics left on the devices until they are needed.

  Fetching a step's metrics waits for that step; the loop fetches at log steps once the next
  step is dispatched, and before evaluations and saves (which wait for the state anyway), so the
  devices are never idle while the host prepares the next batch.
  """

  def __init__(self):
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self._pending.append((step, metrics))

  def fetch(self, step: int) -> dict[str, float]:
    """The metrics of `step`, after checking those of every pending step up to it."""
    ready = [entry for entry in self._pending if entry[0] <= step]
    self._pending = self._pending[len(ready):]
    window = [(s, {k: float(v) for k, v in m.items()}) for s, m in jax.device_get(ready)]
    check_finite(window)
    return window[-1][1]


def progress_line(step: int, total: int, steps_per_epoch: int, metrics: dict[str, float],
                  seconds_per_step: float, batch_size: int) -> str:
  eta = (total - step) * seconds_per_step
  terms = " ".join(f"{k[5:]} {v:.4f}" for k, v in metrics.items() if k.startswith("loss_"))
  return (f"step {step}/{total} epoch {step / steps_per_epoch:.2f} loss {metrics['loss']:.4f} "
          f"({terms}) acc {metrics['accuracy']:.3f} lr {metrics['learning_rate']:.2e} "
          f"{batch_size / seconds_per_step:.1f} img/s ETA {int(eta // 60)}m{int(eta % 60):02d}s")


def model_variables(state: train_state.TrainState) -> dict:
  """The {'params', 'batch_stats'} that evaluators run the model with."""
  return {"params": state.params, "batch_stats": state.batch_stats}


def make_step(config, setup: setup_lib.Setup, mesh: jax.sharding.Mesh):
  """The fresh state on the host, its shardings on `mesh` and the compiled training step.

  The fresh state is where a new run starts and the template a resumed run restores into.
  """
  optimizer = optim.make_optimizer(config.optim, setup.sampler.steps_per_epoch)
  initial_state = train_state.create(
      setup.model, optimizer, jax.random.PRNGKey(config.seed), config.data.image_size,
      pretrained_backbone=setup.backbone[0] if setup.backbone else None,
      with_teacher=bool(config.loss.kd.weight), frozen=setup.frozen)
  state_shardings = sharding.state_shardings(initial_state, mesh, config.sharding.fsdp_min_size)
  imagenet_teacher = setup.backbone[1].model() if setup.backbone else None
  step_fn = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(setup.model, optimizer, config.loss, imagenet_teacher,
                                     seed=config.seed),
      mesh, state_shardings)
  return initial_state, state_shardings, step_fn


def train_iterator(config, setup: setup_lib.Setup):
  """This process's training batches (pipeline.train_dataset over the split's train source of
  `config.data.source`), iterated with the config's workers; its position is checkpointable."""
  dataset = pipeline.train_dataset(
      setup.train_source, setup.sampler, setup.input_config, seed=config.seed,
      num_epochs=max(config.optim.epochs, 1), process_index=jax.process_index(),
      process_count=jax.process_count())
  return pipeline.make_iterator(dataset, num_workers=config.data.workers,
                                num_threads=config.data.threads, prefetch=config.data.prefetch)


def train_and_evaluate(config, workdir: str) -> train_state.TrainState:
  """Runs (or resumes) training in `workdir`; returns the final state."""
  os.makedirs(workdir, exist_ok=True)
  setup = setup_lib.prepare(config, workdir)
  model, sampler = setup.model, setup.sampler
  log(setup.data_check.describe() if setup.data_check else "data check: off (data.check)")
  if jax.process_index() == 0:
    retrieval.save_spec(model, workdir, setup.input_config.input_mean,
                        setup.input_config.input_std)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  log(f"{jax.process_count()} processes, {jax.device_count()} devices; "
      f"{len(setup.train_source)} training items, {sampler}, {setup.total_steps} steps")

  mesh = sharding.make_mesh()
  learning_rate = optim.step_learning_rate(config.optim, sampler.steps_per_epoch)
  initial_state, state_shardings, step_fn = make_step(config, setup, mesh)

  iterator = train_iterator(config, setup)
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

  timer_step, timer = first_step, time.perf_counter()

  def report(step: int, metrics: dict[str, float]) -> None:
    nonlocal timer_step, timer
    now = time.perf_counter()
    seconds_per_step = (now - timer) / (step - timer_step)
    timer_step, timer = step, now
    metrics["learning_rate"] = learning_rate(step)
    metrics["images_per_second"] = sampler.batch_size / seconds_per_step
    writer.write(step, metrics)
    log(progress_line(step, setup.total_steps, sampler.steps_per_epoch, metrics,
                      seconds_per_step, sampler.batch_size))

  pending = PendingMetrics()
  log_step = None  # a log step whose metrics are fetched once the next step is dispatched
  state_checked = first_step  # the last step whose state was checked finite
  last_step = min(setup.total_steps, config.train.stop_after_steps or setup.total_steps)
  for step in range(first_step + 1, last_step + 1):
    batch = pipeline.to_global(next(iterator), mesh)
    batch.pop("index")
    state, metrics = step_fn(state, batch)
    pending.add(step, metrics)
    if log_step is not None:
      report(log_step, pending.fetch(log_step))
      log_step = None
    evaluations = [e for e in setup.evaluators.values() if e.due(step, setup.total_steps)]
    save = step % config.train.checkpoint_every == 0 or step == last_step
    logged = step % config.train.log_every == 0 or step == last_step
    if evaluations or save:  # these wait for the step anyway: check every step up to it first
      metrics = pending.fetch(step)
      if logged:
        report(step, metrics)
      check_finite_state(state, step, state_checked)
      state_checked = step
    elif logged:
      log_step = step
    for evaluator in evaluations:
      values = evaluator.run(model, model_variables(state), mesh)
      writer.write(step, values)
      improved = evaluator.selects_best and checkpoints.save_best(step, state, values)
      log(f"step {step}: {evaluator.description} {values}" + (" (best so far)" if improved
                                                              else ""))
    if save:
      checkpoints.save(step, state, iterator)
  if setup.total_steps == 0:  # recipe none: the pretrained model, evaluated as is
    checkpoints.save(0, state, iterator)
    selector = next(e for e in setup.evaluators.values() if e.selects_best)
    checkpoints.save_best(0, state, selector.run(model, model_variables(state), mesh))
  writer.close()
  checkpoints.close()
  if last_step < setup.total_steps:
    log(f"stopped after step {last_step} of {setup.total_steps} (train.stop_after_steps) in "
        f"{workdir}; run again with a later stop, or none, to continue")
  else:
    log(f"done: {setup.total_steps} steps in {workdir}")
  return state
