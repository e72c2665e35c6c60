"""The PyTorch reference trained like a JAX run: same config, weights, batches, schedule, scoring.

What `trainer.train_and_evaluate` and `main_job.evaluate_unseen` do, with
`torch_reference.Trainer` in place of the JAX step: the initial state is the JAX run's
(`train_state.create`: the converted backbone, SVD-initialised heads) copied into
`torch_reference.RetrievalModel`; the batches are the JAX input pipeline's (the same sampler,
augmentation and seed), NHWC -> NCHW; the rate follows `torch_reference.learning_rate`; after
every epoch, accuracy on the held-out seen sketches keeps the best state (the `seen`
evaluator's selection); the best state embeds the unseen queries and gallery, scored by
`zsbir_jax.evaluation.metrics`. Drop-connect draws from torch's generator: the one random
choice the two runs cannot share. Recipes: those of `torch_reference` (class-wise skp: not
sake). The command is `experiments.benchmarks.torch_run`; this module defines no flags, so that
any command can import it.
"""
import copy
import time

import jax
import numpy as np
import torch
import torch.nn.functional as F

from experiments.benchmarks import torch_reference
from zsbir_jax.data import pipeline
from zsbir_jax.evaluation import metrics
from zsbir_jax.training import optim
from zsbir_jax.training import setup as setup_lib
from zsbir_jax.training import train_state
from zsbir_jax.training import trainer as trainer_lib


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
  """A pipeline batch as torch tensors: images NHWC -> NCHW, labels and the layout as int64."""
  out = {"image": torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2)))}
  out.update({k: torch.from_numpy(batch[k]).long() for k in ("label", "domain", "partner")})
  return out


def predict(fn, items, setup: setup_lib.Setup, batch_size: int) -> np.ndarray:
  """fn(NCHW images) of every item of the source `items` in order, in eval mode on the
  evaluation pipeline's inputs."""
  dataset = pipeline.eval_dataset(items, batch_size, setup.input_config)
  outputs = []
  with torch.no_grad():
    for batch in pipeline.make_iterator(dataset, num_workers=0):
      images = torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2)))
      outputs.append(fn(images).numpy()[batch["mask"]])
  return np.concatenate(outputs)


def initial_trainer(config, setup: setup_lib.Setup) -> torch_reference.Trainer:
  """The torch trainer from the JAX run's fresh state (its backbone, heads and targets)."""
  model = setup.model
  if config.loss.skp.weight and config.loss.skp.targets != "classwise":
    raise ValueError(f"the torch reference has class-wise skp targets only, not recipe "
                     f"{config.recipe}'s")
  state = train_state.create(
      model, optim.make_optimizer(config.optim, setup.sampler.steps_per_epoch),
      jax.random.PRNGKey(config.seed), config.data.image_size,
      pretrained_backbone=setup.backbone[0] if setup.backbone else None,
      frozen=setup.frozen)
  student = torch_reference.RetrievalModel(model.depth, model.embed_dim, model.num_seen_classes,
                                           model.num_teacher_classes, family=model.family,
                                           variant=model.variant)
  student.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                           torch_reference.state_dict_from_flax(
                               state.params, state.batch_stats, model.family).items()})
  targets = setup.frozen.get("class_targets",
                             np.zeros((model.num_seen_classes, model.num_teacher_classes)))
  return torch_reference.Trainer(student, torch.from_numpy(np.asarray(targets, np.float32)),
                                 config, setup.sampler.steps_per_epoch)


def train_and_evaluate(config) -> dict:
  """Trains the torch reference on the JAX run's batches; returns the best state's held-out
  seen accuracy and unseen-class metrics (and the training seconds)."""
  torch.manual_seed(config.seed)
  setup = setup_lib.prepare(config)
  trainer = initial_trainer(config, setup)
  selector = next(e for e in setup.evaluators.values() if e.selects_best)
  split, batch_size = setup.split, config.data.eval_batch_size
  iterator = trainer_lib.train_iterator(config, setup)  # the JAX run's batches
  start = time.perf_counter()

  def seen_accuracy() -> float:
    student = trainer.student.eval()
    logits = predict(lambda x: student.heads(student.encode(x))[0], split.val, setup,
                     batch_size)
    trainer.student.train()
    return float(np.mean(logits.argmax(-1) == split.val.labels))

  best = (-1.0, trainer.student.state_dict(), 0)  # kept as is without steps (recipe none)
  for step in range(1, setup.total_steps + 1):
    losses, _ = trainer.step(to_torch(next(iterator)), return_gradients=False)
    if step % config.train.log_every == 0:
      print(f"step {step}/{setup.total_steps} loss {losses['loss']:.4f}", flush=True)
    if selector.due(step, setup.total_steps):  # the JAX run's schedule; the first best is kept
      accuracy = seen_accuracy()
      print(f"step {step}: held-out seen accuracy {accuracy:.4f}", flush=True)
      if accuracy > best[0]:
        best = (accuracy, copy.deepcopy(trainer.student.state_dict()), step)
  seconds = time.perf_counter() - start
  student = trainer.student.eval()
  student.load_state_dict(best[1])
  embed = lambda records: predict(lambda x: F.normalize(student.encode(x), dim=-1), records,
                                  setup, batch_size)
  result = metrics.evaluate(embed(split.query), split.query.labels, embed(split.gallery),
                            split.gallery.labels)
  return {"recipe": config.recipe, "seed": config.seed, "best_step": best[2],
          "seen_accuracy": best[0] if setup.total_steps else seen_accuracy(),
          "metrics": {k: float(v) for k, v in result.metrics.items()},
          "train_seconds": seconds}
