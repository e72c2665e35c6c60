"""Pictures of a retrieval evaluation: query/top-k grids, precision-recall curves, per-class AP.

Uses matplotlib's object API with the Agg renderer (`Figure.savefig` to PNG), never pyplot, so
it needs no display and leaves the global backend alone. Pixel sizes are figure inches x `dpi`.
"""
from collections.abc import Mapping, Sequence
import json
import os

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
import numpy as np
from PIL import Image

ImageLike = str | os.PathLike | np.ndarray
RELEVANT_COLOUR = "#1a9850"
IRRELEVANT_COLOUR = "#d73027"


def _load(image: ImageLike) -> np.ndarray:
  """(H, W, 3) or (H, W) array of an image file path or an array (uint8, or floats in [0, 1])."""
  if isinstance(image, np.ndarray):
    return image
  with Image.open(image) as im:
    return np.asarray(im.convert("RGB"))


def _show(ax, image: ImageLike) -> None:
  """Draws `image` in `ax` with no ticks, keeping the spines for a coloured frame."""
  ax.imshow(_load(image), cmap="gray", interpolation="lanczos")
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(False)


def retrieval_grid(queries: Sequence[ImageLike], retrieved: Sequence[Sequence[ImageLike]],
                   relevant: np.ndarray, path: str | os.PathLike, *,
                   scores: np.ndarray | None = None, cell_inches: float = 1.4,
                   dpi: int = 100) -> None:
  """One row per query: the query sketch, then its top-k photos framed green (relevant) or red.

  Args:
    queries: Q images (paths or arrays).
    retrieved: Q sequences of k images, best first.
    relevant: (Q, k) bool.
    path: output PNG, (k + 1) x Q cells of `cell_inches` at `dpi`.
    scores: optional (Q, k) distances, printed under the photos.
  """
  relevant = np.asarray(relevant, bool)
  n_query, k = relevant.shape
  if len(queries) != n_query or any(len(r) != k for r in retrieved) or len(retrieved) != n_query:
    raise ValueError(f"Expected {n_query} queries with {k} retrieved images each, as in "
                     f"`relevant` {relevant.shape}; got {len(queries)} queries and rows of "
                     f"{sorted({len(r) for r in retrieved})} images.")
  height = n_query * cell_inches
  fig = Figure(figsize=((k + 1) * cell_inches, height), dpi=dpi)
  axes = fig.subplots(n_query, k + 1, squeeze=False)
  # Margins: 0.3 inches for the column titles, 0.2 for the last row's scores.
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.2 / height, top=1 - 0.3 / height,
                      wspace=0.08, hspace=0.25)
  for i in range(n_query):
    _show(axes[i, 0], queries[i])
    for j in range(k):
      ax = axes[i, j + 1]
      _show(ax, retrieved[i][j])
      for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(RELEVANT_COLOUR if relevant[i, j] else IRRELEVANT_COLOUR)
        spine.set_linewidth(4)
      if scores is not None:
        ax.set_xlabel(f"{scores[i, j]:.3g}", fontsize=7, labelpad=3)
      if i == 0:
        ax.set_title(f"#{j + 1}", fontsize=9)
  axes[0, 0].set_title("query", fontsize=9)
  fig.savefig(path, format="png")


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *,
              title: str = "Interpolated precision-recall", dpi: int = 100) -> None:
  """Mean interpolated precision against recall, one line per split.

  Args:
    curves: split name -> ((P,) recall levels, (P,) precision), as `Evaluation.pr_recall` and
      `Evaluation.pr_precision`.
    path: output PNG, 6 x 4.5 inches at `dpi`.
  """
  fig = Figure(figsize=(6, 4.5), dpi=dpi)
  ax = fig.subplots()
  for name, (recall, precision) in curves.items():
    ax.plot(recall, precision, marker="o", markersize=3, label=name)
  ax.set_xlabel("recall")
  ax.set_ylabel("interpolated precision")
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, format="png")


def per_class_ap(class_names: Sequence[str], ap: np.ndarray, path: str | os.PathLike, *,
                 title: str = "Per-class AP", dpi: int = 100) -> None:
  """Horizontal bars of per-class AP, best first, with the class-balanced mean as a line.

  Args:
    class_names: C names.
    ap: (C,) AP per class (NaN classes are left out).
    path: output PNG, 7 x (1.5 + 0.22 C) inches at `dpi`.
  """
  ap = np.asarray(ap, np.float64)
  if len(class_names) != len(ap):
    raise ValueError(f"{len(class_names)} class names for {len(ap)} AP values.")
  keep = np.flatnonzero(~np.isnan(ap))
  order = keep[np.argsort(-ap[keep], kind="stable")]
  fig = Figure(figsize=(7, 1.5 + 0.22 * len(ap)), dpi=dpi)
  ax = fig.subplots()
  y = np.arange(len(order))
  bars = ax.barh(y, ap[order], color="#4575b4")
  ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
  ax.set_yticks(y, [class_names[i] for i in order], fontsize=8)
  ax.invert_yaxis()
  mean = float(ap[keep].mean()) if len(keep) else float("nan")
  ax.axvline(mean, color="black", linestyle="--", linewidth=1)
  ax.legend(handles=[Patch(color="#4575b4", label="AP"),
                     Line2D([], [], color="black", linestyle="--",
                            label=f"class mean {mean:.3f}")], fontsize=8,
            loc="lower right")
  ax.set_xlim(0, 1)
  ax.set_xlabel("AP")
  ax.set_title(title)
  ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, format="png")


def training_curves(metrics_jsonl: str | os.PathLike, path: str | os.PathLike, *,
                    dpi: int = 100) -> None:
  """Loss terms and accuracies over steps from a run's `metrics.jsonl` (trainer's writer)."""
  rows = [json.loads(line) for line in open(metrics_jsonl) if line.strip()]
  series: dict[str, list[tuple[int, float]]] = {}
  for row in rows:
    for name, value in row.items():
      if name.startswith("loss") or name in ("accuracy", "val_accuracy", "unseen_map_all"):
        series.setdefault(name, []).append((row["step"], value))
  fig = Figure(figsize=(10, 4), dpi=dpi)
  losses, scores = fig.subplots(1, 2)
  for name, points in sorted(series.items()):
    steps, values = zip(*points)
    ax = losses if name.startswith("loss") else scores
    ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3,
            label=name, linewidth=2 if name == "loss" else 1)
  losses.set_title("training losses")
  scores.set_title("accuracy (batch, held-out seen sketches)")
  scores.set_ylim(0, 1.02)
  for ax in (losses, scores):
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, format="png")
