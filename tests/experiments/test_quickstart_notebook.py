"""Executes experiments/notebooks/quickstart.ipynb top to bottom on its tiny setting (CI).

Its sketch-and-search cell serves the app inline on a free localhost port, until the kernel
stops.
"""
import base64
import io
import os
import pathlib
import sys

from jupyter_client import manager
import nbclient
import nbformat
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "experiments" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs_and_shows_the_retrieval_grid(tmp_path, monkeypatch):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert all(not cell.outputs and cell.execution_count is None for cell in code), (
      f"{NOTEBOOK} is committed with outputs; clear them")
  # The kernel must run this interpreter (the venv), not whatever `python` is on PATH.
  command = manager.KernelManager(kernel_name="python3").format_kernel_cmd()
  assert os.path.realpath(command[0]) == os.path.realpath(sys.executable), command

  workdir = tmp_path / "quickstart"
  monkeypatch.setenv("ZSBIR_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("ZSBIR_NOTEBOOK_WORKDIR", str(workdir))
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # one CPU device, as a user's kernel has
  client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300,
                                   resources={"metadata": {"path": str(REPO)}})
  client.execute()  # raises CellExecutionError naming the cell if any cell fails

  grid = workdir / "report" / "retrieval_grid.png"
  assert grid.is_file(), f"{grid} was not written"
  with Image.open(grid) as image:
    assert image.format == "PNG" and min(image.size) > 32, image.size
    size = image.size
  shown = [output["data"]["image/png"] for cell in code for output in cell.outputs
           if output.get("output_type") == "display_data" and "image/png" in output["data"]]
  assert len(shown) == 1, "the retrieval grid is not displayed inline"
  with Image.open(io.BytesIO(base64.b64decode(shown[0]))) as image:
    assert image.size == size
  assert (workdir / "train_full" / "metrics.jsonl").is_file()
  app_cell = next(cell for cell in code if "sketch_page.launch" in cell.source)
  frames = [output["data"]["text/html"] for output in app_cell.outputs
            if output.get("output_type") == "display_data" and "text/html" in output["data"]]
  assert len(frames) == 1 and "<iframe" in frames[0] and "127.0.0.1" in frames[0], (
      "the app is not shown inline", app_cell.outputs)
