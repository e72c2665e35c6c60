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

from experiments.configs import synthetic as synthetic_config
from zsbir_jax import knowledge
from zsbir_jax import pretraining
from zsbir_jax import trainer
from zsbir_jax.data import lists
from zsbir_jax.data import synthetic
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import plots
from zsbir_jax.evaluation import report
from zsbir_jax.evaluation import zero_shot
from zsbir_jax.models import pretrained

_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic", "Where data, runs and report go.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the pretraining and the training.")

RECIPES = ("none", "full")


def stage(name: str):
  print(f"\n== {name} ==", flush=True)
  return time.perf_counter()


def generate_data(root: str, seed: int) -> None:
  if os.path.isfile(os.path.join(root, lists.get_split("synthetic").dataset_dir,
                                 lists.get_split("synthetic").manifest)):
    print(f"synthetic benchmark already in {root}")
    return
  manifest = synthetic.generate(root, synthetic.SyntheticConfig(seed=seed), workers=2)
  print(f"wrote the synthetic benchmark to {root}: {manifest['counts']}")


def pretrain_backbone(root: str, output: str, config) -> None:
  if os.path.isdir(output):
    print(f"pretrained backbone already in {output}")
    return
  setup = pretraining.PretrainConfig(
      optim=config.pretrain.optim, depth=config.model.depth, width=config.model.width,
      image_size=config.data.image_size, batch_size=config.pretrain.batch_size, seed=config.seed)
  result = pretraining.pretrain(
      lists.load_pretrain(root), setup,
      report=lambda e: print(f"pretrain step {e['step']} loss {e['loss']:.3f} "
                             f"acc {e['accuracy']:.3f} {e['images_per_second']:.0f} img/s",
                             flush=True))
  spec = pretrained.BackboneSpec(
      depth=setup.depth, width=setup.width, num_classes=result.val_logits.shape[1],
      source=f"synthetic-pretrain:seed={setup.seed}:steps={result.steps}:"
             f"val_acc={result.val_accuracy:.3f}")
  pretrained.save(output, result.variables, spec)
  print(f"pretrained backbone: validation accuracy {result.val_accuracy:.3f} on the "
        f"pretraining classes -> {output}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; keep orbax's INFO lines out
  workdir = os.path.abspath(_WORKDIR.value)
  root = os.path.join(workdir, "data")
  backbone = os.path.join(workdir, "pretrained")
  table = os.path.join(workdir, "knowledge.npz")
  report_dir = os.path.join(workdir, "report")
  start = time.perf_counter()

  t = stage("1/5 synthetic benchmark")
  generate_data(root, _SEED.value)
  print(f"({time.perf_counter() - t:.0f} s)")

  config = synthetic_config.get_config("recipe=full")
  with config.unlocked():
    config.seed = _SEED.value
    config.data.root = root
    config.init.backbone = backbone
    config.init.knowledge = table

  t = stage("2/5 backbone pretraining (the ImageNet stand-in)")
  pretrain_backbone(root, backbone, config)
  print(f"({time.perf_counter() - t:.0f} s)")

  t = stage("3/5 class-wise semantic knowledge")
  if not os.path.isfile(table):
    knowledge.save(table, knowledge.prepare(root, "synthetic", backbone, config.data.image_size,
                                            config.data.eval_batch_size, temperature=1.0))
  print(f"{table} ({time.perf_counter() - t:.0f} s)")

  t = stage("4/5 training")
  runs = {}
  for recipe in RECIPES:
    run_config = synthetic_config.get_config(f"recipe={recipe}")
    with run_config.unlocked():
      run_config.seed = _SEED.value
      run_config.data.update(root=root, check=recipe == RECIPES[0])
      run_config.init.update(backbone=backbone, knowledge=table)
    runs[recipe] = os.path.join(workdir, f"train_{recipe}")
    print(f"-- recipe {recipe} -> {runs[recipe]}", flush=True)
    trainer.train_and_evaluate(run_config, runs[recipe])
  print(f"({time.perf_counter() - t:.0f} s)")

  t = stage("5/5 evaluation on the unseen classes")
  os.makedirs(report_dir, exist_ok=True)
  reports, curves = {}, {}
  for recipe, run in runs.items():
    sets = zero_shot.compute_embeddings(run, "best", root, "synthetic", 0,
                                        config.data.eval_batch_size, workers=0,
                                        with_train_photos=False)
    results = zero_shot.evaluate(sets, 0, list(metrics.DEFAULT_METRICS))
    reports[recipe] = report.build(sets[zero_shot.QUERY], sets[zero_shot.GALLERY], results)
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
