"""experiments.app: its query path against experiments.retrieve, and the page in real Chromium.

The browser tests start the app on a free localhost port and drive Debian's headless Chromium
(/usr/bin/chromium, installed by .ci/run; nothing is downloaded) with Playwright: they draw and
upload sketches and check the page's results against the Python API for the image the app
received. They fail, not skip, without Chromium.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image
from playwright import sync_api
import pytest

from experiments import sketch_page
from experiments import sketch_queries
from tests.evaluation import test_embedder
from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches out to the network (updates, sync, QUIC probes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SECRET = "not for the page"


@pytest.fixture(scope="module")
def setup(tiny_synthetic, tmp_path_factory):
  """A run that records its split, and a gallery of unseen photos and some seen ones."""
  tmp = tmp_path_factory.mktemp("app")
  workdir = str(tmp / "run")
  test_embedder.make_workdir(workdir)
  config_path = os.path.join(workdir, embedder.CONFIG_FILE)
  with open(config_path) as f:
    config = json.load(f)
  config["data"].update(root=tiny_synthetic, split="synthetic")
  with open(config_path, "w") as f:
    json.dump(config, f)
  data = lists.load_split(tiny_synthetic, "synthetic")
  seen_photos = [r for r in data.train if r.domain == domains.PHOTO][::5]
  records = list(data.gallery) + [r._replace(label=r.label + len(data.unseen_classes))
                                   for r in seen_photos]
  gallery = embeddings.from_source(
      source.RecordSource(records), test_embedder.reference_embeddings(workdir, records),
      data.unseen_classes + data.seen_classes, "synthetic",
      embedder.load_embedder(workdir).identity)
  path = str(tmp / "gallery.npz")
  embeddings.save(path, gallery)
  with open(tmp / "secret.txt", "w") as f:  # beside the gallery file: must not be served
    f.write(SECRET)
  return workdir, data, search.load_retriever(gallery), path, tmp


def rows(answer: sketch_queries.Answer, root: str) -> list[list[str]]:
  """The results table the page shows for `answer` (the body of `results_markdown`)."""
  return [[c.strip() for c in line.strip("|").split("|")]
          for line in sketch_page.results_markdown(answer, root, 0.0).splitlines()[4:]]


def test_query_ranks_as_retrieve(setup, tmp_path):
  workdir, data, retriever, path, _ = setup
  sketch = data.query[4].path
  output = tmp_path / "retrieve.json"
  result = subprocess.run([sys.executable, "-m", "experiments.retrieve", f"--gallery={path}",
                           "--top_k=7", f"--json_output={output}", sketch], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  with open(output) as f:
    expected = json.load(f)["queries"][0]["results"]
  seen = sketch_queries.seen_classes(workdir)
  assert seen == set(data.seen_classes)
  answer = sketch_queries.query(retriever, sketch_queries.decode_upload(sketch), 7, seen=seen)
  assert [r["path"] for r in answer.results] == [r["path"] for r in expected]
  np.testing.assert_allclose([r["score"] for r in answer.results],
                             [r["score"] for r in expected], atol=1e-6)
  assert [r["seen"] for r in answer.results] == [r["class"] in seen for r in expected]
  classes = [data.unseen_classes[1], data.seen_classes[0]]
  filtered = sketch_queries.query(retriever, sketch_queries.decode_upload(sketch), 30, classes,
                                  seen)
  gallery = retriever.gallery
  assert sorted(r["path"] for r in filtered.results) == sorted(
      p for p, label in zip(gallery.paths, gallery.labels) if gallery.class_names[label]
      in classes)
  assert {r["seen"] for r in filtered.results} == {True, False}


def test_upload_limits(tmp_path):
  text = tmp_path / "notes.png"
  text.write_text("not an image")
  with pytest.raises(images.BadImageError, match="notes.png.*not a recognised image format"):
    sketch_queries.decode_upload(str(text))
  big = tmp_path / "big.png"
  Image.new("L", (4097, 4096), 255).save(big)
  with pytest.raises(images.BadImageError, match="4097 x 4096 pixels, more than the 16777216"):
    sketch_queries.decode_upload(str(big))


def test_command_serves_a_workspace_on_localhost(tiny_synthetic, tmp_path):
  """--workdir of a run_synthetic workspace alone: its run and unseen gallery, embedded once."""
  workspace = tmp_path / "workspace"
  run = str(workspace / "train_full")
  test_embedder.make_workdir(run)
  os.symlink(tiny_synthetic, workspace / "data")
  port = free_port()
  (tmp_path / "tmp").mkdir()
  process = subprocess.Popen(
      [sys.executable, "-m", "experiments.app", f"--workdir={workspace}", f"--port={port}"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=dict(os.environ, TMPDIR=str(tmp_path / "tmp")))
  try:
    config = None
    for _ in range(300):
      assert process.poll() is None, process.stdout.read()
      try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
          config = response.read().decode()
        break
      except (urllib.error.URLError, ConnectionError):
        time.sleep(0.5)
    assert config and "gallery: 18 photos of 3 classes (synthetic); exact search" in config
  finally:
    process.terminate()
    output = process.communicate(timeout=30)[0]
  assert f"http://127.0.0.1:{port}" in output
  gallery = embeddings.load(str(workspace / "train_full" / "eval" / "embeddings" / "gallery.npz"))
  records = lists.load_split(str(workspace / "data"), "synthetic").gallery
  assert gallery.paths == tuple(r.path for r in records)
  np.testing.assert_allclose(gallery.embeddings, test_embedder.reference_embeddings(run, records),
                             atol=2e-6)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(setup, tmp_path_factory):
  """(url, browser, hosts the pages asked for): the app on localhost and headless Chromium."""
  assert os.path.isfile(CHROMIUM), f"{CHROMIUM} is missing: install Debian's chromium package"
  workdir, _, retriever, _, _ = setup
  temp = tmp_path_factory.mktemp("gradio")
  contacted = set()  # every host this process resolves or connects to: the app's own only
  connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

  def record_connect(sock, address):
    if isinstance(address, tuple):
      contacted.add(address[0])
    return connect(sock, address)

  def record_getaddrinfo(host, *args, **kwargs):
    contacted.add(host)
    return getaddrinfo(host, *args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(socket.socket, "connect", record_connect)
    patch.setattr(socket, "getaddrinfo", record_getaddrinfo)
    patch.setenv("GRADIO_TEMP_DIR", str(temp))
    search.embed_images(retriever, [np.full((8, 8, 3), 255, np.uint8)], domains.SKETCH)  # compile
    page = sketch_page.build(retriever, sketch_queries.seen_classes(workdir), top_k=6)
    port = free_port()
    sketch_page.launch(page, port=port, prevent_thread_lock=True, quiet=True)
    hosts = set()
    try:
      with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield f"http://127.0.0.1:{port}", browser, hosts, temp
        browser.close()
    finally:
      page.close()
  assert hosts <= {f"127.0.0.1:{port}"}, hosts  # the page: nothing but the app, no web fonts
  assert contacted and contacted <= {"127.0.0.1", "localhost", "::1"}, contacted  # no telemetry


def open_page(served) -> sync_api.Page:
  url, browser, hosts, _ = served
  page = browser.new_page(viewport={"width": 1200, "height": 1000})
  page.on("request", lambda request: hosts.add(urllib.parse.urlsplit(request.url).netloc))
  page.goto(url)
  page.wait_for_selector("#canvas canvas")
  return page


def page_rows(page: sync_api.Page) -> list[list[str]]:
  return [[c.strip() for c in row.split("\t")]
          for row in page.inner_text("#results tbody").strip().splitlines()]


def received_image(page: sync_api.Page) -> np.ndarray:
  """The query image the app shows as received (a PNG it wrote)."""
  response = page.request.get(page.locator("#query img").get_attribute("src"))
  return images.decode_rgb(response.body(), "received")


def test_drawn_sketch_gets_the_api_results(served, setup, tmp_path):
  _, _, retriever, _, _ = setup
  page = open_page(served)
  page.click("#search-drawing")
  page.wait_for_selector("#results :text('The canvas is empty')")
  page.click("#canvas button[title='Brush']")
  box = page.locator("#canvas canvas").first.bounding_box()
  cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
  for (x0, y0), (x1, y1) in [((-60, -40), (50, -40)), ((50, -40), (-10, 60)),
                             ((-10, 60), (-60, -40))]:  # a triangle
    page.mouse.move(cx + x0, cy + y0)
    page.mouse.down()
    for t in np.linspace(0, 1, 12):
      page.mouse.move(cx + x0 + t * (x1 - x0), cy + y0 + t * (y1 - y0))
    page.mouse.up()
  page.click("#search-drawing")
  page.wait_for_selector("#results table")
  drawn = received_image(page)
  ink = drawn.min(axis=2) < 128
  assert drawn.shape == sketch_page.CANVAS_SIZE + (3,) and 0.002 < ink.mean() < 0.2
  assert not ink[:40].any() and not ink[-40:].any()  # the triangle sits mid-canvas
  seen = sketch_queries.seen_classes(retriever.gallery.model.workdir)
  answer = sketch_queries.query(retriever, drawn, 6, seen=seen)
  root = os.path.commonpath(retriever.gallery.paths)
  assert page_rows(page) == rows(answer, root)
  assert page.locator("#photos img").count() == 6
  page.screenshot(path=str(tmp_path / "drawn.png"), full_page=True)
  page.close()


def test_uploads_and_messages(served, setup, tmp_path):
  _, data, retriever, _, _ = setup
  sketch = data.query[9].path
  expected = search.search([sketch], retriever.gallery, 6, domains.SKETCH, 1)[0]["results"]
  page = open_page(served)
  upload = page.locator("#upload input[type=file]")
  text = tmp_path / "sketch.png"
  text.write_text("not an image")
  upload.set_input_files(str(text))
  page.wait_for_selector("#results :text('Not a usable image')")
  assert "not a recognised image format" in page.inner_text("#results")
  page.click("#upload button[aria-label='Clear']")
  best = expected[0]["path"]
  os.rename(best, best + ".away")  # a gallery photo gone from disk: the query fails
  try:
    upload.set_input_files(sketch)
    page.wait_for_selector("#results :text('The query failed')")
  finally:
    os.rename(best + ".away", best)
  assert best in page.inner_text("#results")
  page.click("#upload button[aria-label='Clear']")
  upload.set_input_files(sketch)
  page.wait_for_selector("#results table")
  # The app is still serving; the upload ranks as the library ranks the file.
  seen = sketch_queries.seen_classes(retriever.gallery.model.workdir)
  root = os.path.commonpath(retriever.gallery.paths)
  assert page_rows(page) == rows(sketch_queries.Answer(
      [dict(r, seen=r["class"] in seen) for r in expected], {"embed": 0, "search": 0}), root)
  np.testing.assert_array_equal(received_image(page), images.load_rgb(sketch))
  page.screenshot(path=str(tmp_path / "uploaded.png"), full_page=True)
  page.close()


def test_serves_no_file_but_its_own(served, setup):
  url, _, _, temp = served
  _, _, retriever, _, tmp = setup
  secret = str(tmp / "secret.txt")
  for target in [retriever.gallery.paths[0], secret, "/etc/passwd",
                 f"{temp}/../{os.path.basename(tmp)}/secret.txt",
                 f"{temp}/%2e%2e/{os.path.basename(tmp)}/secret.txt",
                 f"{temp}/..%2f..%2fetc/passwd"]:
    for route in ("/gradio_api/file=", "/file="):
      try:
        with urllib.request.urlopen(url + route + urllib.parse.quote(target, safe="/%"),
                                    timeout=10) as response:
          status, body = response.status, response.read()
      except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
      assert status in (403, 404) and SECRET.encode() not in body, (route, target, status)
