r"""The main job on a fresh machine: the whole method on the built-in synthetic benchmark.

  python -m experiments.run_synthetic            # writes runs/synthetic/report/

1. generates the synthetic benchmark (once; 100 seen / 25 unseen classes, 64 px),
2. pretrains the backbone on its photo-only pretraining classes, the stand-in for ImageNet
   (once; cached in <workdir>/pretrained),
3. prepares EFF's class-wise semantic knowledge from that teacher,
4. trains the `full` recipe, and sets up the `none` baseline (the pretrained backbone with
   SVD-initialised heads, no fine-tuning),
5. evaluates both on the unseen classes and writes <workdir>/report/: report.json, report.md
   (the comparison table), the retrieval grid, precision-recall curves and training curves.

Every stage that has already produced its output is skipped, so a second run only re-evaluates.
"""
import json
import os
import time

from absl import app
from absl import flags
from absl import logging

from experiments import main_job
from experiments import synthetic_workspace
from zsbir_jax.training import trainer

_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic", "Where data, runs and report go.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the pretraining and the training.")

RECIPES = ("none", "full")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; keep orbax's INFO lines out
  workdir = os.path.abspath(_WORKDIR.value)
  workspace = synthetic_workspace.Workspace(workdir)
  report_dir = os.path.join(workdir, "report")
  start = time.perf_counter()

  t = main_job.stage("1/5 synthetic benchmark")
  synthetic_workspace.generate_data(workspace, _SEED.value, main_job.log)
  print(f"({time.perf_counter() - t:.0f} s)")

  config = synthetic_workspace.run_config(workspace, "full", _SEED.value)
  t = main_job.stage("2/5 backbone pretraining (the ImageNet stand-in)")
  synthetic_workspace.pretrain_backbone(workspace, config, main_job.log)
  print(f"({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("3/5 class-wise semantic knowledge")
  synthetic_workspace.prepare_knowledge(workspace, config)
  print(f"{workspace.knowledge} ({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("4/5 training")
  runs = {}
  for recipe in RECIPES:
    check = "full" if recipe == RECIPES[0] else "off"  # the workspace's data, checked once
    run_config = synthetic_workspace.run_config(workspace, recipe, _SEED.value, data_check=check)
    runs[recipe] = os.path.join(workdir, f"train_{recipe}")
    print(f"-- recipe {recipe} -> {runs[recipe]}", flush=True)
    trainer.train_and_evaluate(run_config, runs[recipe])
  print(f"({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("5/5 evaluation on the unseen classes")
  os.makedirs(report_dir, exist_ok=True)
  reports, curves = {}, {}
  for recipe, run in runs.items():
    sets, results, reports[recipe] = synthetic_workspace.evaluate_unseen(run, workspace, config)
    curves[recipe] = main_job.unseen_pr_curve(results)
  main_job.write_pictures(report_dir, sets, results, curves,  # the last recipe's: full
                          os.path.join(runs["full"], "metrics.jsonl"), "synthetic unseen classes")
  with open(os.path.join(report_dir, "report.json"), "w") as f:
    json.dump({"recipes": reports, "seconds": time.perf_counter() - start}, f, indent=2)
  table_md = main_job.comparison_table("zsbir_jax on the synthetic benchmark (unseen classes)",
                                       {r: [report] for r, report in reports.items()})
  with open(os.path.join(report_dir, "report.md"), "w") as f:
    f.write(table_md)
  print(table_md)
  print(f"({time.perf_counter() - t:.0f} s)")
  print(f"\nreport: {report_dir} (total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main)
