r"""Evaluates a training run on the unseen classes of its zero-shot split: report and pictures.

  python -m experiments.evaluate --workdir=runs/sketchy25_eff --root=/data --split=sketchy25 \
      --output_dir=runs/sketchy25_eff/eval --hash_bits=64 --pictures

  python -m experiments.evaluate --embeddings=runs/sketchy25_eff/eval/embeddings \
      --output_dir=runs/sketchy25_eff/eval_again

Every unseen sketch (query) ranks every unseen photo (gallery) by the Euclidean distance of the
L2-normalised embeddings (zsbir_jax.evaluation.metrics: SAKE's semantics, interpolated AP;
--map_at_k and --no_relevant choose between the field's conventions, named in the report).
With --workdir the checkpoint embeds the query and gallery lists (and, for --hash_bits, the
training photos that ITQ is learned on) and the embeddings are stored under
`<output_dir>/embeddings/` ({query,gallery,train_photos}.npz); --embeddings evaluates such a
directory without the model. --hash_bits=64 adds the field's 64-bit ITQ codes ranked by Hamming
distance. --source=tfds --tfds_data_dir=DIR reads the split's TFDS build instead of the list
files under --root (as config.data.source does in training). Writes report.json and report.md
to --output_dir and prints the table; --pictures adds retrieval_grid.png (one query per class
with its top photos, relevant ones framed green), pr_curve.png and per_class_ap_<embedding>.png
(the grid reads the images at their paths: for a TFDS build, relative to the data root it was
built from, so run it from there).
"""
import os

from absl import app
from absl import flags
import jax
import ml_collections

from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import report
from zsbir_jax.evaluation import zero_shot

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run to evaluate (model.json, "
                               "checkpoints); or give --embeddings.")
_EMBEDDINGS = flags.DEFINE_string("embeddings", None, "Directory of precomputed embeddings "
                                  "(query.npz, gallery.npz[, train_photos.npz]).")
_SOURCE = flags.DEFINE_enum("source", "files", source.SOURCES, "Where the split is read (with "
                            "--workdir): the list files under --root, or its TFDS build in "
                            "--tfds_data_dir.")
_ROOT = flags.DEFINE_string("root", "", "Dataset root (with --workdir and --source=files).")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "TFDS data directory of the split's "
                                     "build (with --workdir and --source=tfds).")
_SPLIT = flags.DEFINE_enum("split", None, sorted(lists.SPLITS), "Zero-shot split (with "
                           "--workdir; with --embeddings, checked against theirs).")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to evaluate.")
_HASH_BITS = flags.DEFINE_integer("hash_bits", 0, "ITQ code length (the field reports 64); "
                                  "0: real-valued embeddings only.", lower_bound=0)
_METRICS = flags.DEFINE_list("metrics", list(metrics.DEFAULT_METRICS), "Metrics to compute.")
_MAP_AT_K = flags.DEFINE_enum("map_at_k", "sake", sorted(metrics.MAP_AT_K), "Denominator of "
                               "mAP@K: " + "; ".join(f"{k}: {v}" for k, v in
                                                     metrics.MAP_AT_K.items()) + ".")
_NO_RELEVANT = flags.DEFINE_enum("no_relevant", "exclude", sorted(metrics.NO_RELEVANT),
                                 "Queries without a relevant gallery item: " + "; ".join(
                                     f"{k}: {v}" for k, v in metrics.NO_RELEVANT.items()) + ".")
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
    data = ml_collections.ConfigDict(dict(source=_SOURCE.value, root=_ROOT.value,
                                         split=_SPLIT.value or "",
                                         tfds_data_dir=_TFDS_DATA_DIR.value))
    try:
      split = source.open_split(data)
    except ValueError as e:
      raise app.UsageError(f"--workdir: {e}") from e
    sets = zero_shot.compute_embeddings(_WORKDIR.value, _WHICH.value, split, _IMAGE_SIZE.value,
                                        _BATCH_SIZE.value, _WORKERS.value,
                                        with_train_photos=_HASH_BITS.value > 0)
    if jax.process_index() == 0:
      directory = os.path.join(_OUTPUT_DIR.value, zero_shot.EMBEDDINGS_DIR)
      os.makedirs(directory, exist_ok=True)
      for name, s in sets.items():
        embeddings.save(os.path.join(directory, f"{name}.npz"), s)
  else:
    sets = zero_shot.load_embeddings(_EMBEDDINGS.value, with_train_photos=_HASH_BITS.value > 0)
    if _SPLIT.value is not None and _SPLIT.value != sets[zero_shot.QUERY].split:
      raise app.UsageError(f"--split={_SPLIT.value} but {_EMBEDDINGS.value} holds split "
                           f"{sets[zero_shot.QUERY].split!r}")
  if jax.process_index() != 0:
    return
  results = zero_shot.evaluate(sets, _HASH_BITS.value, _METRICS.value,
                               no_relevant=_NO_RELEVANT.value, map_at_k=_MAP_AT_K.value)
  the_report = report.build(sets[zero_shot.QUERY], sets[zero_shot.GALLERY], results)
  written = list(report.write(the_report, _OUTPUT_DIR.value))
  if _PICTURES.value:
    written += zero_shot.draw_pictures(sets, results, ap_metrics[0], _OUTPUT_DIR.value,
                             _GRID_QUERIES.value, _GRID_K.value)
  print(report.to_markdown(the_report))
  print("wrote " + ", ".join(written))


if __name__ == "__main__":
  app.run(main)
