"""Pieces shared by the main jobs and their results tables (`run_synthetic`, `run_sketchy_mini`,
`synthetic_table`, `sketchy_mini_table`): progress lines, the unseen-class evaluation of a run's
best checkpoint, the tables' cells and files, and the report's pictures.

Defines no flags, so every command can import it.
"""
import os
import time

import numpy as np
import orbax.checkpoint as ocp

from zsbir_jax import inference
from zsbir_jax.data import source
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import plots
from zsbir_jax.evaluation import report
from zsbir_jax.evaluation import zero_shot
from zsbir_jax.training import checkpoint


def stage(name: str) -> float:
  """Prints a stage heading; returns its start time (time.perf_counter)."""
  print(f"\n== {name} ==", flush=True)
  return time.perf_counter()


def log(message: str) -> None:
  print(message, flush=True)


def evaluate_unseen(run_dir: str, data) -> tuple[dict[str, embeddings.EmbeddingSet], list, dict]:
  """Embeds the unseen sets of the split of `data` (a config's data block) with the run's best
  checkpoint and scores them.

  Returns (embedding sets, [(kind, Evaluation)], report dict of `report.build`).
  """
  sets = zero_shot.compute_embeddings(run_dir, "best", source.open_split(data), 0,
                                      data.eval_batch_size, workers=0, with_train_photos=False)
  results = zero_shot.evaluate(sets, 0, list(metrics.DEFAULT_METRICS))
  return sets, results, report.build(sets[zero_shot.QUERY], sets[zero_shot.GALLERY], results)


def best_seen_accuracy(run_dir: str) -> float:
  """The selecting metric (held-out seen-sketch accuracy) recorded with the run's best
  checkpoint."""
  manager = ocp.CheckpointManager(
      os.path.join(run_dir, inference.BEST_DIR), options=ocp.CheckpointManagerOptions(
          best_fn=lambda m: m[checkpoint.BEST_METRIC], best_mode="max", read_only=True))
  return float(manager.metrics(manager.best_step())[checkpoint.BEST_METRIC])


def mean_std(values) -> str:
  """'mean ± sample std' of `values` (std 0 for one value), two decimals."""
  values = np.asarray(values, np.float64)
  std = values.std(ddof=1) if len(values) > 1 else 0.0
  return f"{values.mean():.2f} ± {std:.2f}"


def delta(values, baseline) -> str:
  """The mean of `values` minus the mean of `baseline`, signed, two decimals, marked * where it
  exceeds the two sample stds combined (sqrt(s1² + s2²)); unmarked, with a ? instead, where a
  side has one value and so no spread to judge by."""
  values, baseline = np.asarray(values, np.float64), np.asarray(baseline, np.float64)
  d = values.mean() - baseline.mean()
  if min(len(values), len(baseline)) < 2:
    return f"{d:+.2f}?"
  spread = np.hypot(values.std(ddof=1), baseline.std(ddof=1))
  return f"{d:+.2f}{'*' if abs(d) > spread else ''}"


DISCUSSION = "## Discussion"


def write_results(path: str, markdown: str) -> None:
  """Writes a results file to `path`, keeping a hand-written `## Discussion` section already
  there."""
  discussion = ""
  if os.path.isfile(path):
    with open(path) as f:
      previous = f.read()
    if DISCUSSION in previous:
      discussion = "\n" + previous[previous.index(DISCUSSION):]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write(markdown + discussion)


def comparison_table(title: str, reports: dict[str, list[dict]],
                     seen_accuracy: dict[str, list[float]] | None = None) -> str:
  """Markdown: one row per recipe with the standard metrics of its real-valued embeddings, in
  percent, mean ± std over its runs (`reports[recipe]`, one `report.build` dict per seed), and
  the held-out seen-sketch accuracy of the selected checkpoints if given."""
  first = next(iter(reports.values()))[0]
  names = list(first["results"][0]["metrics"])
  seeds = len(next(iter(reports.values())))
  lines = [f"# {title}", "",
           f"{first['n_queries']} query sketches x {first['n_gallery']} gallery photos, "
           f"{len(first['split']['unseen_classes'])} unseen classes; real-valued embeddings, "
           f"interpolated (VOC) AP averaged over queries; mean ± std over {seeds} seed(s).", "",
           "| recipe | " + " | ".join(report.metric_title(n) for n in names)
           + (" | seen-sketch accuracy |" if seen_accuracy else " |"),
           "|---" * (len(names) + 1 + bool(seen_accuracy)) + "|"]
  for recipe, runs in reports.items():
    cells = [mean_std([100 * r["results"][0]["metrics"][n] for r in runs]) for n in names]
    if seen_accuracy:
      cells.append(mean_std([100 * a for a in seen_accuracy[recipe]]))
    lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_pictures(report_dir: str, sets: dict[str, embeddings.EmbeddingSet], results: list,
                   curves: dict[str, tuple[np.ndarray, np.ndarray]], metrics_jsonl: str,
                   title: str) -> None:
  """The retrieval grid and per-class AP of `sets`/`results`, the precision-recall curves of
  every recipe (`curves`: recipe -> (recall, precision)) and the training curves of one run."""
  zero_shot.draw_pictures(sets, results, "map@all", report_dir, grid_queries=8, grid_k=8)
  plots.pr_curves({f"recipe {r}": c for r, c in curves.items()},
                  os.path.join(report_dir, "pr_curve.png"),
                  title=f"Interpolated precision-recall, {title}")
  if os.path.isfile(metrics_jsonl):
    plots.training_curves(metrics_jsonl, os.path.join(report_dir, "training_curves.png"))


def unseen_pr_curve(results: list) -> tuple[np.ndarray, np.ndarray]:
  """(recall, precision) of the real-valued evaluation in `results`."""
  return results[0][1].pr_recall, results[0][1].pr_precision
