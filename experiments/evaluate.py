r"""Evaluates a training run on the unseen classes of its zero-shot split: report and pictures.

  python -m experiments.evaluate --workdir=runs/sketchy25_eff --root=/data --split=sketchy25 \
      --output_dir=runs/sketchy25_eff/eval --hash_bits=64 --pictures

  python -m experiments.evaluate --embeddings=runs/sketchy25_eff/eval/embeddings \
      --output_dir=runs/sketchy25_eff/eval_again

Every unseen sketch (query) ranks every unseen photo (gallery) by the Euclidean distance of the
L2-normalised embeddings (zsbir_jax.evaluation.metrics: SAKE's semantics, interpolated AP).
With --workdir the checkpoint embeds the query and gallery lists (and, for --hash_bits, the
training photos that ITQ is learned on) and the embeddings are stored under
`<output_dir>/embeddings/` ({query,gallery,train_photos}.npz); --embeddings evaluates such a
directory without the model. --hash_bits=64 adds the field's 64-bit ITQ codes ranked by Hamming
distance. Writes report.json and report.md to --output_dir and prints the table; --pictures
adds retrieval_grid.png (one query per class with its top photos, relevant ones framed green),
pr_curve.png and per_class_ap_<embedding>.png.
"""
import os

from absl import app
from absl import flags
import jax
import numpy as np

from zsbir_jax.data import lists
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import hashing
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import plots
from zsbir_jax.evaluation import report

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run to evaluate (model.json, "
                               "checkpoints); or give --embeddings.")
_EMBEDDINGS = flags.DEFINE_string("embeddings", None, "Directory of precomputed embeddings "
                                  "(query.npz, gallery.npz[, train_photos.npz]).")
_ROOT = flags.DEFINE_string("root", None, "Dataset root (with --workdir).")
_SPLIT = flags.DEFINE_enum("split", None, sorted(lists.SPLITS), "Zero-shot split (with "
                           "--workdir; with --embeddings, checked against theirs).")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to evaluate.")
_HASH_BITS = flags.DEFINE_integer("hash_bits", 0, "ITQ code length (the field reports 64); "
                                  "0: real-valued embeddings only.", lower_bound=0)
_METRICS = flags.DEFINE_list("metrics", list(metrics.DEFAULT_METRICS), "Metrics to compute.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global embedding batch size (a multiple "
                                   "of the device count).", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 0, "Input size; 0: the training run's "
                                   "(config.json).", lower_bound=0)
_WORKERS = flags.DEFINE_integer("workers", 0, "Data-loading worker processes.", lower_bound=0)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the report goes.", required=True)
_PICTURES = flags.DEFINE_bool("pictures", False, "Also write the retrieval grid, the PR curve "
                              "and per-class AP bars (PNG).")
_GRID_QUERIES = flags.DEFINE_integer("grid_queries", 10, "Rows of the retrieval grid (one "
                                     "query per class).", lower_bound=1)
_GRID_K = flags.DEFINE_integer("grid_k", 8, "Photos per row of the retrieval grid.",
                               lower_bound=1)

EMBEDDINGS_DIR = "embeddings"
QUERY, GALLERY, TRAIN_PHOTOS = "query", "gallery", "train_photos"


def compute_embeddings(workdir: str, which: str, root: str, split: str, image_size: int,
                       batch_size: int, workers: int,
                       with_train_photos: bool) -> dict[str, embeddings.EmbeddingSet]:
  """Embeds the split's queries and gallery (and training photos) with the run's checkpoint."""
  data = lists.load_split(root, split)
  embedder = embeddings.load_embedder(workdir, which, image_size or None)
  parts = {QUERY: (data.query, data.unseen_classes),
           GALLERY: (data.gallery, data.unseen_classes)}
  if with_train_photos:
    parts[TRAIN_PHOTOS] = ([r for r in data.train if r.domain == lists.PHOTO],
                           data.seen_classes)
  # One pass over all lists: one compilation, one padded batch.
  z = embeddings.extract(embedder, [r for records, _ in parts.values() for r in records],
                         batch_size, workers=workers)
  sets, start = {}, 0
  for name, (records, classes) in parts.items():
    sets[name] = embeddings.from_records(records, z[start:start + len(records)], classes, split,
                                         embedder.identity)
    start += len(records)
  return sets


def load_embeddings(directory: str, with_train_photos: bool) -> dict[str, embeddings.EmbeddingSet]:
  """Reads `<directory>/{query,gallery[,train_photos]}.npz`; they must share split and model."""
  names = [QUERY, GALLERY] + ([TRAIN_PHOTOS] if with_train_photos else [])
  sets = {name: embeddings.load(os.path.join(directory, f"{name}.npz")) for name in names}
  for name, s in sets.items():
    if (s.split, s.model) != (sets[QUERY].split, sets[QUERY].model):
      raise ValueError(f"{directory}: {name}.npz was made by another model or split than "
                       f"query.npz ({s.split}, step {s.model.step} of {s.model.workdir} vs "
                       f"{sets[QUERY].split}, step {sets[QUERY].model.step} of "
                       f"{sets[QUERY].model.workdir})")
  return sets


def evaluate(sets: dict[str, embeddings.EmbeddingSet], hash_bits: int, metric_names: list[str]
             ) -> list[tuple[report.EmbeddingKind, metrics.Evaluation]]:
  """Real-valued evaluation, plus ITQ codes (learned on the training photos) if hash_bits."""
  query, gallery = sets[QUERY], sets[GALLERY]
  results = [(report.EmbeddingKind("real", query.embeddings.shape[1]),
              metrics.evaluate(query.embeddings, query.labels, gallery.embeddings,
                               gallery.labels, metrics=metric_names))]
  if hash_bits:
    train = sets[TRAIN_PHOTOS]
    itq = hashing.fit_itq(train.embeddings, hash_bits)
    results.append((report.EmbeddingKind("itq", hash_bits, len(train)),
                    metrics.evaluate(hashing.encode(itq, query.embeddings), query.labels,
                                     hashing.encode(itq, gallery.embeddings), gallery.labels,
                                     metrics=metric_names, distance="hamming")))
  return results


def draw_pictures(sets: dict[str, embeddings.EmbeddingSet],
                  results: list[tuple[report.EmbeddingKind, metrics.Evaluation]],
                  ap_metric: str, output_dir: str, grid_queries: int, grid_k: int) -> list[str]:
  """Writes the retrieval grid (real-valued ranking), PR curves and per-class AP bars."""
  query, gallery = sets[QUERY], sets[GALLERY]
  # The first query of each class, in class order.
  _, first = np.unique(query.labels, return_index=True)
  rows = first[:grid_queries]
  top, scores = embeddings.nearest(query.embeddings[rows], gallery.embeddings, grid_k)
  paths = [os.path.join(output_dir, name) for name in ("retrieval_grid.png", "pr_curve.png")]
  plots.retrieval_grid([query.paths[i] for i in rows],
                       [[gallery.paths[j] for j in row] for row in top],
                       gallery.labels[top] == query.labels[rows, None], paths[0], scores=scores)
  plots.pr_curves({f"{query.split}, {kind.label()}": (e.pr_recall, e.pr_precision)
                   for kind, e in results}, paths[1],
                  title=f"Interpolated precision-recall, {query.split} unseen classes")
  for kind, e in results:
    paths.append(os.path.join(output_dir, f"per_class_ap_{kind.kind}.png"))
    plots.per_class_ap([query.class_names[c] for c in e.classes], e.per_class[ap_metric],
                       paths[-1], title=f"Per-class {report.metric_title(ap_metric)}, "
                       f"{query.split}, {kind.label()}")
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if (_WORKDIR.value is None) == (_EMBEDDINGS.value is None):
    raise app.UsageError("give exactly one of --workdir and --embeddings")
  for name in _METRICS.value:
    metrics.parse_metric(name)
  ap_metrics = [m for m in _METRICS.value if metrics.parse_metric(m).kind == "map"]
  if _PICTURES.value and not ap_metrics:
    raise app.UsageError(f"--pictures needs an mAP metric in --metrics={_METRICS.value}")
  if _WORKDIR.value is not None:
    if _ROOT.value is None or _SPLIT.value is None:
      raise app.UsageError("--workdir needs --root and --split")
    sets = compute_embeddings(_WORKDIR.value, _WHICH.value, _ROOT.value, _SPLIT.value,
                              _IMAGE_SIZE.value, _BATCH_SIZE.value, _WORKERS.value,
                              with_train_photos=_HASH_BITS.value > 0)
    if jax.process_index() == 0:
      directory = os.path.join(_OUTPUT_DIR.value, EMBEDDINGS_DIR)
      os.makedirs(directory, exist_ok=True)
      for name, s in sets.items():
        embeddings.save(os.path.join(directory, f"{name}.npz"), s)
  else:
    sets = load_embeddings(_EMBEDDINGS.value, with_train_photos=_HASH_BITS.value > 0)
    if _SPLIT.value is not None and _SPLIT.value != sets[QUERY].split:
      raise app.UsageError(f"--split={_SPLIT.value} but {_EMBEDDINGS.value} holds split "
                           f"{sets[QUERY].split!r}")
  if jax.process_index() != 0:
    return
  results = evaluate(sets, _HASH_BITS.value, _METRICS.value)
  the_report = report.build(sets[QUERY], sets[GALLERY], results)
  written = list(report.write(the_report, _OUTPUT_DIR.value))
  if _PICTURES.value:
    written += draw_pictures(sets, results, ap_metrics[0], _OUTPUT_DIR.value,
                             _GRID_QUERIES.value, _GRID_K.value)
  print(report.to_markdown(the_report))
  print("wrote " + ", ".join(written))


if __name__ == "__main__":
  app.run(main)
