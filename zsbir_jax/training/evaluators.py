"""Evaluations the training loop runs on a schedule: each a small class, built from the config.

`config.evals` maps a name to {'kind': a key of KINDS, 'every_epochs': E (0: off; when on, the
last step always runs it too), ...}. `build` makes one evaluator per entry; `run(model,
variables, mesh)` returns named scalars that the loop writes to the metrics. An evaluator that
`selects_best` returns `checkpoint.BEST_METRIC`, which keeps the best checkpoint: it reads seen
classes only, since unseen classes never choose anything (the zero-shot protocol). A new
evaluation is a subclass of Evaluator, an entry of KINDS and a config entry.
"""
from typing import Any

import jax
import ml_collections
import numpy as np

from zsbir_jax import inference
from zsbir_jax.data import augment
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder
from zsbir_jax.evaluation import metrics as retrieval_metrics
from zsbir_jax.models import retrieval
from zsbir_jax.training import checkpoint


class Evaluator:
  """An evaluation of the split's lists every `every_steps` steps (0: never).

  Attributes:
    description: how the loop's log line names the values.
    selects_best: whether `run` returns the metric that selects the best checkpoint.
  """
  description = ""
  selects_best = False

  def __init__(self, every_steps: int, split: source.Split,
               input_config: augment.AugmentConfig, batch_size: int):
    self.every_steps = every_steps
    self.split, self.input_config, self.batch_size = split, input_config, batch_size

  def due(self, step: int, last_step: int) -> bool:
    """Whether the loop runs this evaluation after `step` of `last_step`."""
    return bool(self.every_steps) and (step % self.every_steps == 0 or step == last_step)

  def run(self, model: retrieval.RetrievalModel, variables: dict[str, Any],
          mesh: jax.sharding.Mesh) -> dict[str, float]:
    """Named scalars of the model with `variables` ({'params', 'batch_stats'})."""
    raise NotImplementedError


class SeenAccuracy(Evaluator):
  """Seen-class accuracy on the held-out seen-class sketches; selects the best checkpoint."""
  description = "validation"
  selects_best = True

  def run(self, model, variables, mesh):
    logits = inference.predict_source(lambda v, x: model.apply(v, x)[1], variables,
                                      self.split.val, self.input_config, self.batch_size,
                                      mesh=mesh)
    return {checkpoint.BEST_METRIC: float(np.mean(logits.argmax(-1) == self.split.val.labels))}


class UnseenRetrieval(Evaluator):
  """mAP@all of unseen-class sketches against unseen-class photos: monitoring, never selection."""
  description = "unseen-class retrieval (monitoring only)"

  def run(self, model, variables, mesh):
    embed = lambda items: embedder.embed_source(model, variables, items, self.input_config,
                                                self.batch_size, mesh=mesh)
    query, gallery = self.split.query, self.split.gallery
    result = retrieval_metrics.evaluate(embed(query), query.labels, embed(gallery),
                                        gallery.labels, metrics=("map@all",))
    return {"unseen_map_all": result.metrics["map@all"]}


KINDS = {"seen_accuracy": SeenAccuracy, "unseen_retrieval": UnseenRetrieval}


def build(evals: ml_collections.ConfigDict, split: source.Split,
          input_config: augment.AugmentConfig, batch_size: int,
          steps_per_epoch: int) -> dict[str, Evaluator]:
  """The evaluators of `evals` (config.evals), by name, over `split`'s lists."""
  built = {}
  for name, entry in evals.items():
    if entry.kind not in KINDS:
      raise ValueError(f"evals.{name}: unknown kind {entry.kind!r}; known: {sorted(KINDS)}")
    built[name] = KINDS[entry.kind](entry.every_epochs * steps_per_epoch, split, input_config,
                                    batch_size)
  return built
