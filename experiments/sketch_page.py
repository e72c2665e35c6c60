"""The sketch-and-search page (Gradio): a canvas and an upload in, the nearest photos out.

`build` makes the page of a `search.Retriever` (`sketch_queries.query` answers each sketch);
`launch` serves it on localhost without a share link. The page shows only thumbnails the app
reads from the gallery's own paths (`allowed_paths` stays empty, so no file path is ever
served). Defines no flags, so `experiments.app`, the notebook and the tests can import it.
"""
import os
import time

from absl import logging
import numpy as np
from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check
import gradio as gr  # noqa: E402  pylint: disable=g-import-not-at-top,g-bad-import-order

from experiments import sketch_queries  # noqa: E402
from zsbir_jax.data import augment  # noqa: E402
from zsbir_jax.data import images  # noqa: E402
from zsbir_jax.evaluation import search  # noqa: E402

MAX_K = 50
CANVAS_SIZE = (384, 384)  # drawn at 3 px brush radius, ~1/64 of the side as in the sketches
THUMBNAIL_SIZE = 256  # longest side of the photos sent to the page


def thumbnail(path: str) -> np.ndarray:
  """A gallery photo, its longest side at most THUMBNAIL_SIZE."""
  image = Image.fromarray(images.load_rgb(path))
  image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
  return np.asarray(image)


def results_markdown(answer: sketch_queries.Answer, root: str, decode_seconds: float) -> str:
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
      result = sketch_queries.query(retriever, image, int(k), class_names or (), seen)
      photos = [(thumbnail(r["path"]), f"{r['rank']}. {r['class']} {r['distance']:.3f}")
                for r in result.results]
      return photos, results_markdown(result, root, decode_seconds), image
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("query failed")
      return [], f"**The query failed** ({type(e).__name__}: {e}); the app is still serving.", None

  def search_drawing(editor, k, class_names):
    start = time.perf_counter()
    image = None if editor is None else editor.get("composite")
    if image is not None and image.shape[0] * image.shape[1] > sketch_queries.MAX_PIXELS:
      return [], "**Not a usable image**: the drawing has too many pixels.", None
    if image is None or not has_ink(np.asarray(image)[..., :3]):
      return [], "**The canvas is empty**: draw a sketch first, or upload one.", None
    image = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3])
    return answer(image, k, class_names, time.perf_counter() - start)

  def search_upload(path, k, class_names):
    if path is None:
      return [], "Upload a sketch image (PNG, JPEG, ...).", None
    start = time.perf_counter()
    try:
      image = sketch_queries.decode_upload(path)
    except images.BadImageError as e:
      return [], f"**Not a usable image**: {e}.", None
    return answer(image, k, class_names, time.perf_counter() - start)

  with gr.Blocks(title="zsbir_jax: sketch and search", analytics_enabled=False) as page:
    run = os.path.relpath(model.workdir)  # shorter where it is under the working directory
    index = retriever.index
    method = ("exact" if index is None else
              f"approximate (FAISS IVF, {index.nprobe} of {index.nlist} cells; exact with a "
              "class filter)")
    gr.Markdown(f"## Sketch and search\nModel: step {model.step} ({model.which}) of "
                f"`{model.workdir if run.startswith('..') else run}`; gallery: "
                f"{len(gallery)} photos of {len(gallery.class_names)} classes "
                f"({gallery.split or 'no split'}); {method} search.")
    with gr.Row():
      with gr.Column():
        canvas = gr.Sketchpad(label="Draw a sketch", type="numpy", image_mode="RGB",
                              canvas_size=CANVAS_SIZE, format="png", layers=False,
                              brush=gr.Brush(default_size=3, colors=["#000000"],
                                             color_mode="fixed"),
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


def launch(page: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **kwargs):
  """Serves `page` on `host` without a share link (port None: the first free from 7860)."""
  return page.launch(server_name=host, server_port=port, share=False, allowed_paths=[],
                     max_file_size=sketch_queries.MAX_UPLOAD_BYTES, **kwargs)
