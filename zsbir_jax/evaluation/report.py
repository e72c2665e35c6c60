"""The evaluation report: everything a retrieval result must state, as JSON and as a table.

A report names the split (and its instantiation and unseen classes), the model, the query and
gallery counts, and for each way of comparing items (real-valued D-d embeddings with Euclidean
distance, or ITQ codes with Hamming distance) every metric averaged over queries (the
standard) and class-balanced (DSN's), the per-class values under class names, the mean
interpolated precision-recall curve, the AP@K variant (SAKE's or Doodle-to-Search's), and the
number of queries without a relevant gallery item with the convention they were counted by.
Metric values are fractions in [0, 1] in the JSON and percentages in the table.
"""
from collections.abc import Sequence
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from zsbir_jax.data import lists
from zsbir_jax.evaluation import embeddings as embeddings_lib
from zsbir_jax.evaluation import metrics as metrics_lib

JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
AP_VARIANT = ("interpolated (VOC 2010) for map@*: precision replaced by the maximum precision at "
              "any later rank; AP@K on the first K ranks (its denominator: map_at_k of each "
              "result). map_noninterp@*: non-interpolated (sklearn's), a cross-check")
AVERAGING = {"metrics": "mean over queries (the standard)",
             "class_balanced": "mean over classes of per-class means (DSN)"}
RANKING = ("by float64 Euclidean distances as scipy's cdist computes them, or by Hamming "
           "distances; equal distances in gallery order (a stable sort)")


@dataclasses.dataclass(frozen=True)
class EmbeddingKind:
  """How queries and gallery were compared: `real` (D = size, Euclidean) or `itq` (size bits,
  Hamming, the hash learned on `itq_train_items` training photos)."""
  kind: str
  size: int
  itq_train_items: int = 0

  def label(self) -> str:
    return f"real {self.size}-d" if self.kind == "real" else f"ITQ {self.size}-bit"

  def to_json(self) -> dict[str, Any]:
    if self.kind == "real":
      return {"kind": "real", "label": self.label(), "dimensions": self.size,
              "distance": "euclidean", "note": "L2-normalised: ranks as cosine similarity"}
    return {"kind": "itq", "label": self.label(), "bits": self.size, "distance": "hamming",
            "learned_on": f"{self.itq_train_items} training-photo embeddings"}


def _json_safe(value: Any) -> Any:
  """NaN -> None throughout (JSON has no NaN), NumPy scalars -> Python."""
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, (float, np.floating)):
    return None if math.isnan(value) else float(value)
  if isinstance(value, np.integer):
    return int(value)
  return value


def _result(kind: EmbeddingKind, evaluation: metrics_lib.Evaluation,
            query: embeddings_lib.EmbeddingSet,
            gallery: embeddings_lib.EmbeddingSet) -> dict[str, Any]:
  """One comparison's section: metrics, averaging, per-class values by name, PR curve."""
  summary = evaluation.to_json()
  n_queries = np.bincount(query.labels, minlength=len(query.class_names))
  n_gallery = np.bincount(gallery.labels, minlength=len(query.class_names))
  per_class = {}
  for i, label in enumerate(evaluation.classes.tolist()):
    per_class[query.class_names[label]] = dict(
        n_queries=int(n_queries[label]), n_gallery=int(n_gallery[label]),
        **{name: values[i] for name, values in evaluation.per_class.items()})
  return {
      "embedding": kind.to_json(),
      "metrics": summary["metrics"],
      "class_balanced": summary["class_balanced"],
      "n_without_relevant": evaluation.n_without_relevant,
      "no_relevant": summary["no_relevant"],
      "map_at_k": summary["map_at_k"],
      "per_class": per_class,
      "pr_curve": summary["pr_curve"],
  }


def build(query: embeddings_lib.EmbeddingSet, gallery: embeddings_lib.EmbeddingSet,
          results: Sequence[tuple[EmbeddingKind, metrics_lib.Evaluation]]) -> dict[str, Any]:
  """The JSON-serialisable report of `results`, evaluations of `query` against `gallery`."""
  if query.class_names != gallery.class_names or query.split != gallery.split:
    raise ValueError(f"query ({query.split}, {len(query.class_names)} classes) and gallery "
                     f"({gallery.split}, {len(gallery.class_names)} classes) differ")
  split = {"name": query.split, "unseen_classes": list(query.class_names)}
  if query.split in lists.SPLITS:
    spec = lists.SPLITS[query.split]
    split.update(description=spec.description,
                 lists=os.path.join(spec.dataset_dir, spec.list_dir),
                 query_list=spec.query_list, gallery_list=spec.gallery_list)
  return _json_safe({
      "split": split,
      "model": dataclasses.asdict(query.model),
      "n_queries": len(query),
      "n_gallery": len(gallery),
      "n_queries_without_relevant": int(np.sum(~np.isin(query.labels, gallery.labels))),
      "ap_variant": AP_VARIANT,
      "averaging": AVERAGING,
      "ranking": RANKING,
      "results": [_result(kind, evaluation, query, gallery) for kind, evaluation in results],
  })


def metric_title(name: str) -> str:
  """'map@all' -> 'mAP@all', 'p@100' -> 'P@100', 'map_noninterp@200' -> 'mAP(non-interp.)@200'."""
  spec = metrics_lib.parse_metric(name)
  prefix = {"map": "mAP", "map_noninterp": "mAP(non-interp.)", "p": "P"}[spec.kind]
  return f"{prefix}@{'all' if spec.k is None else spec.k}"


def _percent(value: float | None) -> str:
  return "-" if value is None else f"{100 * value:.2f}"


def to_markdown(report: dict[str, Any]) -> str:
  """A human-readable summary of `report` (from `build`): metrics table and per-class AP."""
  split, model = report["split"], report["model"]
  lines = [f"# Retrieval evaluation: {split['name']}", ""]
  if "description" in split:
    lines.append(f"Split: {split['description']}; lists {split['lists']}.")
  lines += [
      f"Unseen classes ({len(split['unseen_classes'])}): {', '.join(split['unseen_classes'])}.",
      f"Model: {model['workdir']}, {model['which']} checkpoint (step {model['step']}), "
      f"{model['image_size']} px inputs.",
      f"Queries: {report['n_queries']} unseen sketches; gallery: {report['n_gallery']} unseen "
      f"photos; queries without a relevant item: {report['n_queries_without_relevant']}.",
      f"AP: {report['ap_variant']}. Ranking: {report['ranking']}."]
  for result in report["results"]:
    lines.append(f"{result['embedding']['label']}: mAP@K {result['map_at_k']}; queries "
                 f"without a relevant item ({result['n_without_relevant']}): "
                 f"{result['no_relevant']}.")
  lines.append("")
  names = list(report["results"][0]["metrics"]) if report["results"] else []
  lines += ["| embedding | averaging | " + " | ".join(map(metric_title, names)) + " |",
            "|---|---|" + "---|" * len(names)]
  for result in report["results"]:
    label = result["embedding"]["label"]
    for key, averaging in (("metrics", "over queries"), ("class_balanced", "class-balanced")):
      lines.append(f"| {label} | {averaging} | " +
                   " | ".join(_percent(result[key][n]) for n in names) + " |")
  ap = next((n for n in names if metrics_lib.parse_metric(n).kind == "map"), None)
  if ap is not None:
    results = report["results"]
    lines += ["", f"Per-class {metric_title(ap)} (percent):", "",
              "| class | queries | gallery | " +
              " | ".join(r["embedding"]["label"] for r in results) + " |",
              "|---|---|---|" + "---|" * len(results)]
    for name, row in results[0]["per_class"].items():
      lines.append(f"| {name} | {row['n_queries']} | {row['n_gallery']} | " +
                   " | ".join(_percent(r["per_class"][name][ap]) for r in results) + " |")
  lines.append("")
  return "\n".join(lines)


def write(report: dict[str, Any], output_dir: str) -> tuple[str, str]:
  """Writes report.json and report.md into `output_dir`; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, JSON_FILE)
  markdown_path = os.path.join(output_dir, MARKDOWN_FILE)
  with open(json_path, "w") as f:
    json.dump(report, f, indent=2, allow_nan=False)
  with open(markdown_path, "w") as f:
    f.write(to_markdown(report))
  return json_path, markdown_path
