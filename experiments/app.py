r"""Sketch and search in the browser: draw or upload a sketch, get the nearest gallery photos.

  python -m experiments.app --workdir=runs/synthetic      # the main job's model and gallery
  python -m experiments.app --gallery=runs/sketchy25_eff/eval/embeddings/gallery.npz

Serves a Gradio page on http://127.0.0.1:7860 (--host/--port; no public share link): a canvas
(draw, undo, clear) and an upload for a sketch image; the answer is the top-k gallery photos
with their class, Euclidean distance of the unit embeddings (the metrics' ranking), whether
the class was seen in training, and the time the query took. The query path is the library's
(`search.Retriever`: the gallery's own preprocessing, `embed` and exact search), so the page
ranks as `experiments.retrieve` does. --ivf_lists searches approximately instead (`ann`, for
galleries of millions of photos).

The gallery is an embeddings file of `experiments.evaluate`, with its training run (--workdir
if it has moved); a gallery made by another checkpoint or model is refused. --workdir alone
names a workspace of `experiments.run_synthetic`: its `train_full` run and that run's unseen
gallery, embedded on first use into <workdir>/train_full/eval/embeddings/ exactly as
`experiments.evaluate --workdir=<workdir>/train_full --root=<workdir>/data --split=synthetic
--output_dir=<workdir>/train_full/eval` would.

Safe by default: uploads must decode as images within the size and pixel limits of
`sketch_queries`; the page (`sketch_page`) serves thumbnails that the app reads from the
gallery's own paths (no file path is ever served: `allowed_paths` is empty), and Gradio's files
live in a temporary directory of the app.
"""
import dataclasses
import os
import tempfile

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from experiments import sketch_page
from experiments import sketch_queries
from experiments import synthetic_workspace
from zsbir_jax import domains
from zsbir_jax.evaluation import ann
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search

_WORKDIR = flags.DEFINE_string("workdir", None, "A run_synthetic workspace (serves its train_full "
                               "run), or the training run of --gallery if it has moved.")
_GALLERY = flags.DEFINE_string("gallery", None, "Gallery embeddings .npz of experiments.evaluate "
                               "(<output_dir>/embeddings/gallery.npz).")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint of a workspace's "
                           "run (a --gallery names its own).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Interface to bind; 0.0.0.0 exposes the page "
                            "to the network.")
_PORT = flags.DEFINE_integer("port", 7860, "Port to serve on.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Photos shown at first (the page can change it).",
                              lower_bound=1)
_IVF_LISTS = flags.DEFINE_integer("ivf_lists", 0, "Approximate search: a FAISS IVF index of "
                                  "this many cells (about 4 sqrt(gallery size)); 0: exact.",
                                  lower_bound=0)
_IVF_PROBE = flags.DEFINE_integer("ivf_probe", 16, "Cells an IVF search visits per query.",
                                  lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="zsbir_app_"))
  # Gradio decodes the editor's images itself: PIL then refuses those of more than twice this.
  Image.MAX_IMAGE_PIXELS = sketch_queries.MAX_PIXELS
  if _GALLERY.value is None:
    if _WORKDIR.value is None:
      raise app.UsageError("give --gallery, or --workdir of a run_synthetic workspace")
    workspace = synthetic_workspace.Workspace(_WORKDIR.value)
    gallery_path = synthetic_workspace.unseen_gallery(workspace, _WHICH.value)
    workdir = os.path.join(_WORKDIR.value, synthetic_workspace.TRAINED_RUN)
  else:
    gallery_path, workdir = _GALLERY.value, _WORKDIR.value
  gallery = embeddings.load(gallery_path)
  if _WHICH.present and _WHICH.value != gallery.model.which:
    raise app.UsageError(f"--which={_WHICH.value}, but {gallery_path} was embedded by the "
                         f"{gallery.model.which} checkpoint")
  retriever = search.load_retriever(gallery, workdir)
  if _IVF_LISTS.value:
    retriever = dataclasses.replace(retriever, index=ann.build(
        gallery.embeddings, _IVF_LISTS.value, min(_IVF_PROBE.value, _IVF_LISTS.value)))
  search.embed_images(retriever, [np.full((8, 8, 3), 255, np.uint8)], domains.SKETCH)  # compile
  seen = sketch_queries.seen_classes(workdir or gallery.model.workdir)
  sketch_page.launch(sketch_page.build(retriever, seen, _TOP_K.value), _HOST.value,
                     _PORT.value)


if __name__ == "__main__":
  app.run(main)
