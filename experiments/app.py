r"""Sketch and search in the browser: draw or upload a sketch, get the nearest gallery photos.

  python -m experiments.app --workdir=runs/synthetic      # the main job's model and gallery
  python -m experiments.app --gallery=runs/sketchy25_eff/eval/embeddings/gallery.npz

Serves a Gradio page on http://127.0.0.1:7860 (--host/--port; no public share link): a canvas
(draw, undo, clear) and an upload for a sketch image; the answer is the top-k gallery photos
with their class, Euclidean distance of the unit embeddings (the metrics' ranking), whether
the class was seen in training, and the time the query took. The query path is the library's
(`search.Retriever`: the gallery's own preprocessing, `embed` and exact search), so the page
ranks as `experiments.retrieve` does.

The gallery is an embeddings file of `experiments.evaluate`, with its training run (--workdir
if it has moved); a gallery made by another checkpoint or model is refused. --workdir alone
names a workspace of `experiments.run_synthetic`: its `train_full` run and that run's unseen
gallery, embedded on first use into <workdir>/train_full/eval/embeddings/ exactly as
`experiments.evaluate --workdir=<workdir>/train_full --root=<workdir>/data --split=synthetic
--output_dir=<workdir>/train_full/eval` would.

Safe by default: uploads must decode as images within MAX_UPLOAD_BYTES and MAX_PIXELS; the page
serves thumbnails that the app reads from the gallery's own paths (no file path is ever
served: `allowed_paths` is empty), and Gradio's files live in a temporary directory of the app.
"""
import dataclasses
import json
import os
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check
import gradio as gr  # noqa: E402  pylint: disable=g-import-not-at-top,g-bad-import-order

from zsbir_jax import domains  # noqa: E402
from zsbir_jax.data import augment  # noqa: E402
from zsbir_jax.data import images  # noqa: E402
from zsbir_jax.data import lists  # noqa: E402
from zsbir_jax.evaluation import embedder  # noqa: E402
from zsbir_jax.evaluation import embeddings  # noqa: E402
from zsbir_jax.evaluation import search  # noqa: E402
from zsbir_jax.evaluation import zero_shot  # noqa: E402

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

# A drawn or scanned sketch is a few hundred KB at most; the limits refuse anything far beyond
# before it is decoded (the pixel count is read from the header).
MAX_UPLOAD_BYTES = 8 * 2**20
MAX_PIXELS = 4096 * 4096
MAX_K = 50
THUMBNAIL_SIZE = 256  # longest side of the photos sent to the page
SYNTHETIC_RUN = "train_full"  # run_synthetic's trained recipe


@dataclasses.dataclass(frozen=True)
class Answer:
  """A query's results: `rank`'s items with "seen" (True, False, None: unknown), and times (s)."""
  results: list[dict]
  seconds: dict[str, float]


def seen_classes(workdir: str) -> frozenset[str] | None:
  """The seen (training) classes of a run, from its config.json's data root and split.

  None when the run does not record them or its data is not where it was trained.
  """
  try:
    with open(os.path.join(workdir, embedder.CONFIG_FILE)) as f:
      data = json.load(f).get("data", {})
    spec = lists.get_split(data["split"])
    return frozenset(lists.read_class_names(os.path.join(
        data["root"], spec.dataset_dir, spec.list_dir, spec.seen_class_file)))
  except (OSError, KeyError, ValueError):
    return None


def synthetic_gallery(workspace: str, which: str, batch_size: int = 128) -> str:
  """The unseen gallery of a run_synthetic workspace's run; embedded and written if missing."""
  run = os.path.join(workspace, SYNTHETIC_RUN)
  directory = os.path.join(run, "eval" if which == "best" else f"eval_{which}",
                           zero_shot.EMBEDDINGS_DIR)
  path = os.path.join(directory, f"{zero_shot.GALLERY}.npz")
  if not os.path.isfile(path):
    logging.info("embedding the unseen gallery of %s into %s", run, directory)
    sets = zero_shot.compute_embeddings(run, which, os.path.join(workspace, "data"), "synthetic",
                                        0, batch_size, workers=0, with_train_photos=False)
    os.makedirs(directory, exist_ok=True)
    for name, s in sets.items():
      embeddings.save(os.path.join(directory, f"{name}.npz"), s)
  return path


def decode_upload(path: str) -> np.ndarray:
  """An uploaded file as RGB uint8 (H, W, 3); BadImageError beyond the limits or undecodable."""
  name = os.path.basename(path)
  size = os.path.getsize(path)
  if size > MAX_UPLOAD_BYTES:
    raise images.BadImageError(name, f"{size} bytes, more than the {MAX_UPLOAD_BYTES} allowed")
  with open(path, "rb") as f:
    return images.decode_rgb(f.read(), name, max_pixels=MAX_PIXELS)


def query(retriever: search.Retriever, image: np.ndarray, k: int, class_names=(),
          seen: frozenset[str] | None = None) -> Answer:
  """Top-k gallery photos for a decoded sketch (RGB uint8), optionally of `class_names` only."""
  start = time.perf_counter()
  z = search.embed_images(retriever, [image], domains.SKETCH)
  embedded = time.perf_counter()
  names = retriever.gallery.class_names
  labels = [names.index(c) for c in class_names] if class_names else None
  results = search.rank(retriever, z, k, labels)[0]
  done = time.perf_counter()
  for item in results:
    item["seen"] = None if seen is None else item["class"] in seen
  return Answer(results, {"embed": embedded - start, "search": done - embedded})


def thumbnail(path: str) -> np.ndarray:
  """A gallery photo, its longest side at most THUMBNAIL_SIZE."""
  image = Image.fromarray(images.load_rgb(path))
  image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
  return np.asarray(image)


def results_markdown(answer: Answer, root: str, decode_seconds: float) -> str:
  """The results as a Markdown table under a line with the query's times."""
  total = decode_seconds + sum(answer.seconds.values())
  flag = {True: "seen", False: "unseen", None: "?"}
  lines = [f"{len(answer.results)} photos in {1e3 * total:.0f} ms (decode "
           f"{1e3 * decode_seconds:.1f} ms, preprocess and embed "
           f"{1e3 * answer.seconds['embed']:.1f} ms, search {1e3 * answer.seconds['search']:.1f}"
           " ms)", "", "| rank | class | distance | seen | photo |", "|---|---|---|---|---|"]
  lines += [f"| {r['rank']} | {r['class']} | {r['distance']:.4f} | {flag[r['seen']]} | "
            f"{os.path.relpath(r['path'], root)} |" for r in answer.results]
  return "\n".join(lines)


def has_ink(image: np.ndarray) -> bool:
  """Whether a drawing has any stroke (a pixel as dark as ink framing counts it)."""
  return bool((image.min(axis=2) < augment.INK_THRESHOLD).any())


def build(retriever: search.Retriever, seen: frozenset[str] | None = None,
          top_k: int = 10) -> gr.Blocks:
  """The page: canvas and upload in, photos with a results table and the received query out."""
  gallery = retriever.gallery
  paths = gallery.paths
  root = os.path.commonpath(paths) if len(set(paths)) > 1 else os.path.dirname(paths[0])
  model = gallery.model

  def answer(image, k, class_names, decode_seconds):
    try:
      result = query(retriever, image, int(k), class_names or (), seen)
      photos = [(thumbnail(r["path"]), f"{r['rank']}. {r['class']} {r['distance']:.3f}")
                for r in result.results]
      return photos, results_markdown(result, root, decode_seconds), image
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("query failed")
      return [], f"**The query failed** ({type(e).__name__}: {e}); the app is still serving.", None

  def search_drawing(editor, k, class_names):
    start = time.perf_counter()
    image = None if editor is None else editor.get("composite")
    if image is None or not has_ink(np.asarray(image)[..., :3]):
      return [], "**The canvas is empty**: draw a sketch first, or upload one.", None
    image = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3])
    return answer(image, k, class_names, time.perf_counter() - start)

  def search_upload(path, k, class_names):
    if path is None:
      return [], "Upload a sketch image (PNG, JPEG, ...).", None
    start = time.perf_counter()
    try:
      image = decode_upload(path)
    except images.BadImageError as e:
      return [], f"**Not a usable image**: {e}.", None
    return answer(image, k, class_names, time.perf_counter() - start)

  with gr.Blocks(title="zsbir_jax: sketch and search", analytics_enabled=False) as page:
    gr.Markdown(f"## Sketch and search\nModel: step {model.step} ({model.which}) of "
                f"`{model.workdir}`; gallery: {len(gallery)} photos of "
                f"{len(gallery.class_names)} classes ({gallery.split or 'no split'}).")
    with gr.Row():
      with gr.Column():
        canvas = gr.Sketchpad(label="Draw a sketch", type="numpy", image_mode="RGB",
                              canvas_size=(384, 384), format="png", layers=False,
                              elem_id="canvas")
        draw_button = gr.Button("Search with the drawing", variant="primary",
                                elem_id="search-drawing")
        upload = gr.File(label="... or upload a sketch image", type="filepath",
                         elem_id="upload")
        k = gr.Slider(1, min(MAX_K, len(gallery)), value=min(top_k, len(gallery)), step=1,
                      label="photos (k)", elem_id="k")
        classes = gr.Dropdown(list(gallery.class_names), multiselect=True, value=[],
                              label="only these classes (none: all)", elem_id="classes")
      with gr.Column(scale=2):
        photos = gr.Gallery(label="nearest photos", columns=5, buttons=["fullscreen"],
                            elem_id="photos")
        table = gr.Markdown("Draw a sketch and search, or upload one.", elem_id="results")
        received = gr.Image(label="the query as received", type="numpy", format="png",
                            interactive=False, height=160, buttons=["download"],
                            elem_id="query")
    outputs = [photos, table, received]
    draw_button.click(search_drawing, [canvas, k, classes], outputs)
    upload.upload(search_upload, [upload, k, classes], outputs)
  return page


def launch(page: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, **kwargs):
  """Serves `page` without a share link; its files go to a temporary directory of the app."""
  return page.launch(server_name=host, server_port=port, share=False, allowed_paths=[],
                     max_file_size=MAX_UPLOAD_BYTES, **kwargs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="zsbir_app_"))
  if _GALLERY.value is None:
    if _WORKDIR.value is None:
      raise app.UsageError("give --gallery, or --workdir of a run_synthetic workspace")
    gallery_path = synthetic_gallery(_WORKDIR.value, _WHICH.value)
    workdir = os.path.join(_WORKDIR.value, SYNTHETIC_RUN)
  else:
    gallery_path, workdir = _GALLERY.value, _WORKDIR.value
  gallery = embeddings.load(gallery_path)
  if _WHICH.present and _WHICH.value != gallery.model.which:
    raise app.UsageError(f"--which={_WHICH.value}, but {gallery_path} was embedded by the "
                         f"{gallery.model.which} checkpoint")
  retriever = search.load_retriever(gallery, workdir)
  search.embed_images(retriever, [np.full((8, 8, 3), 255, np.uint8)], domains.SKETCH)  # compile
  launch(build(retriever, seen_classes(workdir or gallery.model.workdir), _TOP_K.value),
         _HOST.value, _PORT.value)


if __name__ == "__main__":
  app.run(main)
