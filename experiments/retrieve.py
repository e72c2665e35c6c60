r"""Retrieves the photos nearest to sketch files from an embedded gallery.

  python -m experiments.retrieve --gallery=runs/sketchy25_eff/eval/embeddings/gallery.npz \
      --top_k=10 --json_output=results.json my_sketch.png another_sketch.png

The sketches are embedded with the model that embedded the gallery (its training run, the same
checkpoint and input preprocessing; --workdir points to the run if it has moved) and the
gallery is ranked by cosine similarity, best first; equal scores keep gallery order. Prints
each query's top-k photo paths with scores and classes; --json_output also writes them as JSON.
"""
import json
import os

from absl import app
from absl import flags
import numpy as np

from zsbir_jax import domains
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search

_GALLERY = flags.DEFINE_string("gallery", None, "Gallery embeddings .npz (experiments.evaluate "
                               "writes <output_dir>/embeddings/gallery.npz).", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The training run that made the gallery "
                               "(default: the one recorded in it).")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Photos per query.", lower_bound=1)
_DOMAIN = flags.DEFINE_enum("domain", "sketch", ["sketch", "photo"], "Domain of the query "
                            "images (sketches may be framed by their ink, as in training).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Queries embedded at once (on one device).",
                                   lower_bound=1)
_JSON_OUTPUT = flags.DEFINE_string("json_output", None, "Also write the results here (JSON).")


def format_results(results: list[dict]) -> str:
  """One block per query: rank, score, class and path of each retrieved photo."""
  lines = []
  for item in results:
    lines.append(f"query: {item['query']}")
    width = max(len(r["class"]) for r in item["results"])
    lines += [f"  {r['rank']:3d}  {r['score']:+.4f}  {r['class']:<{width}}  {r['path']}"
              for r in item["results"]]
  return "\n".join(lines)


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("give one or more query image files after the flags")
  gallery = embeddings.load(_GALLERY.value)
  if not np.all(gallery.labels >= 0):
    raise ValueError(f"{_GALLERY.value} has unlabelled items; expected a gallery")
  domain = domains.SKETCH if _DOMAIN.value == "sketch" else domains.PHOTO
  results = search.search(argv[1:], gallery, _TOP_K.value, domain, _BATCH_SIZE.value,
                              _WORKDIR.value)
  print(format_results(results))
  if _JSON_OUTPUT.value:
    with open(_JSON_OUTPUT.value, "w") as f:
      json.dump({"gallery": os.path.abspath(_GALLERY.value),
                 "model": {"workdir": gallery.model.workdir, "step": gallery.model.step},
                 "queries": results}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
