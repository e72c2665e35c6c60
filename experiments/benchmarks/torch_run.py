r"""The PyTorch reference trained like a JAX run: same config, weights, batches, schedule, scoring.

  python -m experiments.benchmarks.torch_run \
      --config=experiments/configs/sketchy_mini.py:recipe=eff --result=runs/torch_eff.json \
      --config.data.root=runs/sketchy_mini/data \
      --config.init.backbone=runs/sketchy_mini/lite0_imagenet \
      --config.init.knowledge=runs/sketchy_mini/sketchy25_mini_knowledge.npz

`experiments.benchmarks.torch_job.train_and_evaluate` with the config; writes its result.
"""
import json

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.benchmarks import torch_job

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:args].",
                                          lock_config=True)
_RESULT = flags.DEFINE_string("result", None, "JSON file for the result.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  result = torch_job.train_and_evaluate(_CONFIG.value)
  with open(_RESULT.value, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
