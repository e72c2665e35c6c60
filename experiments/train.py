r"""Trains a ZS-SBIR model: one compiled update per class-balanced batch, checkpointed, validated.

  python -m experiments.train --config=experiments/configs/synthetic.py:recipe=full \
      --workdir=runs/synthetic_full --config.data.root=runs/synthetic_data \
      --config.init.backbone=runs/synthetic_pretrained \
      --config.init.knowledge=runs/synthetic_knowledge.npz

Any config value can be overridden with --config.x.y=value; the config is locked, so a typo is an
error. Running the same command again resumes from the workdir's latest checkpoint and finishes
with exactly the parameters of an uninterrupted run. Multi-host: pass --config.train.distributed
(TPU pods, SLURM, ... auto-detected) or --coordinator_address/--num_processes/--process_id.
"""
from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from zsbir_jax.training import setup
from zsbir_jax.training import trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:args].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, metrics).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0, for an explicit multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None or not _WORKDIR.value:
    raise app.UsageError("give --config=experiments/configs/<name>.py[:args] and --workdir")
  if _COORDINATOR.value:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  elif config.train.distributed:
    jax.distributed.initialize()
  try:
    trainer.train_and_evaluate(config, _WORKDIR.value)
  except (setup.ConfigError, FloatingPointError) as e:
    logging.error("%s", e)
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  app.run(main)
