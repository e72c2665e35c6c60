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

from experiments import synthetic_workspace
from zsbir_jax.evaluation import plots
from zsbir_jax.evaluation import report
from zsbir_jax.evaluation import zero_shot
from zsbir_jax.training import trainer

_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic", "Where data, runs and report go.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the pretraining and the training.")

RECIPES = ("none", "full")


def stage(name: str):
  print(f"\n== {name} ==", flush=True)
  return time.perf_counter()


def log(message: str) -> None:
  print(message, flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; keep orbax's INFO lines out
  workdir = os.path.abspath(_WORKDIR.value)
  workspace = synthetic_workspace.Workspace(workdir)
  report_dir = os.path.join(workdir, "report")
  start = time.perf_counter()

  t = stage("1/5 synthetic benchmark")
  synthetic_workspace.generate_data(workspace, _SEED.value, log)
  print(f"({time.perf_counter() - t:.0f} s)")

  config = synthetic_workspace.run_config(workspace, "full", _SEED.value)
  t = stage("2/5 backbone pretraining (the ImageNet stand-in)")
  synthetic_workspace.pretrain_backbone(workspace, config, log)
  print(f"({time.perf_counter() - t:.0f} s)")

  t = stage("3/5 class-wise semantic knowledge")
  synthetic_workspace.prepare_knowledge(workspace, config)
  print(f"{workspace.knowledge} ({time.perf_counter() - t:.0f} s)")

  t = stage("4/5 training")
  runs = {}
  for recipe in RECIPES:
    check = "full" if recipe == RECIPES[0] else "off"  # the workspace's data, checked once
    run_config = synthetic_workspace.run_config(workspace, recipe, _SEED.value, data_check=check)
    runs[recipe] = os.path.join(workdir, f"train_{recipe}")
    print(f"-- recipe {recipe} -> {runs[recipe]}", flush=True)
    trainer.train_and_evaluate(run_config, runs[recipe])
  print(f"({time.perf_counter() - t:.0f} s)")

  t = stage("5/5 evaluation on the unseen classes")
  os.makedirs(report_dir, exist_ok=True)
  reports, curves = {}, {}
  for recipe, run in runs.items():
    sets, results, reports[recipe] = synthetic_workspace.evaluate_unseen(run, workspace, config)
    curves[recipe] = (results[0][1].pr_recall, results[0][1].pr_precision)
    if recipe == "full":
      zero_shot.draw_pictures(sets, results, "map@all", report_dir, grid_queries=8, grid_k=8)
  plots.pr_curves({f"recipe {r}": c for r, c in curves.items()},
                  os.path.join(report_dir, "pr_curve.png"),
                  title="Interpolated precision-recall, synthetic unseen classes")
  plots.training_curves(os.path.join(runs["full"], "metrics.jsonl"),
                        os.path.join(report_dir, "training_curves.png"))
  with open(os.path.join(report_dir, "report.json"), "w") as f:
    json.dump({"recipes": reports, "seconds": time.perf_counter() - start}, f, indent=2)
  table_md = comparison_table(reports)
  with open(os.path.join(report_dir, "report.md"), "w") as f:
    f.write(table_md)
  print(table_md)
  print(f"({time.perf_counter() - t:.0f} s)")
  print(f"\nreport: {report_dir} (total {time.perf_counter() - start:.0f} s)")


def comparison_table(reports: dict[str, dict]) -> str:
  """Markdown: one row per recipe with the standard metrics of its real-valued embeddings."""
  first = next(iter(reports.values()))
  names = list(first["results"][0]["metrics"])
  lines = ["# zsbir_jax on the synthetic benchmark (unseen classes)", "",
           f"Split: synthetic, {first['n_queries']} query sketches x {first['n_gallery']} "
           f"gallery photos, {len(first['split']['unseen_classes'])} unseen classes; "
           f"real-valued embeddings, interpolated (VOC) AP averaged over queries.", "",
           "| recipe | " + " | ".join(report.metric_title(n) for n in names) + " |",
           "|---" * (len(names) + 1) + "|"]
  for recipe, r in reports.items():
    values = r["results"][0]["metrics"]
    lines.append(f"| {recipe} | " + " | ".join(f"{100 * values[n]:.2f}" for n in names) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  app.run(main)
