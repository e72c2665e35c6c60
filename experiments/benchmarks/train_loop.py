r"""The training loop's speed against its bare compiled step, at the same shapes.

  python -m experiments.benchmarks.train_loop                 # the synthetic config, recipe full
  python -m experiments.benchmarks.train_loop --steps=440 --repeats=3 --workers=2

"loop" is `trainer.train_and_evaluate` as users run it: the grain pipeline decoding and
augmenting every batch, metrics fetched and written every `log_every` steps, checkpoints every
`checkpoint_every` steps (evaluations off: they are not part of a step). Its images/s are the
trainer's own, summed over the logging windows after the first (which holds compilation).
"bare" is the same compiled step (`trainer.make_step`) called back to back on one batch of the
same pipeline already on the devices, timed over as many steps with one wait at the end: what
the devices can do when nothing else runs. "input alone" is the pipeline and the transfer with
no step: on a CPU, whose cores run both, the loop cannot beat the two added up, and the last
column compares it with that sum. Loop, bare and input runs alternate `--repeats` times to
spread the noise of a shared machine over all three. The data is a small generated synthetic tree
(the loop's speed does not depend on the dataset's size) and the state starts from scratch,
with a random class-wise knowledge table for the `full` recipe.
"""
import json
import math
import os
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.benchmarks import timing
from experiments.configs import synthetic as synthetic_config
from zsbir_jax import sharding
from zsbir_jax.data import pipeline
from zsbir_jax.data import source
from zsbir_jax.data import synthetic
from zsbir_jax.method import knowledge
from zsbir_jax.training import metric_writer
from zsbir_jax.training import setup as setup_lib
from zsbir_jax.training import trainer

_RECIPE = flags.DEFINE_string("recipe", "full", "Recipe of the synthetic config.")
_STEPS = flags.DEFINE_integer("steps", 220, "Training steps per loop run (at least; whole "
                              "epochs). 220 includes one checkpoint of the default cadence.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Alternating loop and bare runs.")
_WORKERS = flags.DEFINE_integer("workers", None, "data.workers (default: the config's).")
_LOG_EVERY = flags.DEFINE_integer("log_every", None, "train.log_every (default: the config's).")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", None,
                                         "train.checkpoint_every (default: the config's).")


def batch_size(config) -> int:
  return 2 * config.data.classes_per_batch * config.data.items_per_class


def make_config(root: str, knowledge_path: str, steps: int):
  config = synthetic_config.get_config(f"recipe={_RECIPE.value}")
  config.data.root = root
  config.data.check = "off"
  config.init.knowledge = knowledge_path
  config.evals.seen.every_epochs = 0
  if _WORKERS.value is not None:
    config.data.workers = _WORKERS.value
  if _LOG_EVERY.value is not None:
    config.train.log_every = _LOG_EVERY.value
  if _CHECKPOINT_EVERY.value is not None:
    config.train.checkpoint_every = _CHECKPOINT_EVERY.value
  steps_per_epoch = setup_lib.prepare(config).sampler.steps_per_epoch
  config.optim.epochs = math.ceil(steps / steps_per_epoch)
  return config


def loop_images_per_second(config, workdir: str) -> tuple[float, int]:
  """The trainer's images/s after its first logging window, and the steps they cover."""
  trainer.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, metric_writer.METRICS_FILE)) as f:
    windows = [json.loads(line) for line in f]
  windows = [w for w in windows if "images_per_second" in w]
  images = seconds = 0.0
  for previous, window in zip(windows, windows[1:]):
    window_images = (window["step"] - previous["step"]) * batch_size(config)
    images += window_images
    seconds += window_images / window["images_per_second"]
  return images / seconds, windows[-1]["step"] - windows[0]["step"]


def bare_images_per_second(config, steps: int) -> float:
  """Images/s of the compiled step called `steps` times on one batch already on the devices."""
  setup = setup_lib.prepare(config)
  mesh = sharding.make_mesh()
  initial_state, state_shardings, step_fn = trainer.make_step(config, setup, mesh)
  dataset = pipeline.train_dataset(setup.train_source, setup.sampler,
                                   setup.input_config, seed=config.seed,
                                   num_epochs=1)
  batch = pipeline.to_global(dataset[0], mesh)
  batch.pop("index")
  state = sharding.put_global(initial_state, state_shardings)
  for _ in range(2):  # compilation and the allocator's first steps
    state, metrics = step_fn(state, batch)
  jax.block_until_ready((state, metrics))
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready((state, metrics))
  return steps * setup.sampler.batch_size / (time.perf_counter() - start)


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    synthetic.generate(tmp, synthetic.SyntheticConfig(
        num_seen=12, num_unseen=3, sketches_per_class=16, test_sketches_per_class=2,
        photos_per_class=16, num_pretrain=1, pretrain_photos_per_class=2,
        pretrain_val_per_class=1))
    knowledge_path = os.path.join(tmp, "knowledge.npz")
    config = synthetic_config.get_config(f"recipe={_RECIPE.value}")
    config.data.root = tmp
    split_classes = source.open_split(config.data).seen_classes
    logits = np.random.default_rng(0).normal(size=(len(split_classes),
                                                   config.init.num_teacher_classes))
    knowledge.save(knowledge_path, knowledge.KnowledgeTable(
        targets=knowledge.class_targets(logits, np.arange(len(split_classes)),
                                        len(split_classes), 1.0),
        class_names=tuple(split_classes), teacher="random (benchmark)", temperature=1.0))
    config = make_config(tmp, knowledge_path, _STEPS.value)
    print(f"recipe {config.recipe}, ResNet-{config.model.depth} x{config.model.width}, "
          f"{config.data.image_size} px, batch {batch_size(config)}, "
          f"{config.data.workers} data workers, log every {config.train.log_every}, "
          f"checkpoint every {config.train.checkpoint_every} steps; jax {jax.__version__} on "
          f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s))", flush=True)
    rows = []
    for repeat in range(_REPEATS.value):
      loop, steps = loop_images_per_second(config, os.path.join(tmp, f"run{repeat}"))
      bare = bare_images_per_second(config, steps)
      alone = timing.input_images_per_second(config, steps)
      rows.append((loop, bare, alone))
      print(f"  repeat {repeat}: loop {loop:.1f} img/s over {steps} steps, bare {bare:.1f} "
            f"img/s, input alone {alone:.1f} img/s", flush=True)
  # Where host and devices are the same CPU cores, the input's work adds to the step's: at
  # best the loop runs at 1 / (1 / bare + 1 / input), with no waiting at all.
  print("\n| repeat | loop img/s | bare step img/s | input alone img/s | loop / bare | "
        "loop / (step + input, serial) |\n|---|---|---|---|---|---|")
  rows.append(tuple(np.mean(rows, axis=0)))
  for repeat, (loop, bare, alone) in enumerate(rows):
    serial = 1 / (1 / bare + 1 / alone)
    name = "mean" if repeat == len(rows) - 1 else repeat
    print(f"| {name} | {loop:.1f} | {bare:.1f} | {alone:.1f} | {loop / bare:.3f} | "
          f"{loop / serial:.3f} |")


if __name__ == "__main__":
  app.run(main)
