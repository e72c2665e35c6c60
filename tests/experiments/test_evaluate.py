"""experiments.evaluate as a real subprocess on a synthetic run: report against direct metrics."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.evaluation import test_embedder
from zsbir_jax import domains
from zsbir_jax.data import lists
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import hashing
from zsbir_jax.evaluation import metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def evaluate(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.evaluate", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_evaluate_command(tiny_synthetic, tmp_path):
  workdir, out = str(tmp_path / "run"), tmp_path / "eval"
  test_embedder.make_workdir(workdir)
  result = evaluate(f"--workdir={workdir}", f"--root={tiny_synthetic}", "--split=synthetic",
                    f"--output_dir={out}", "--hash_bits=8", "--batch_size=8", "--pictures")
  assert result.returncode == 0, result.stderr
  with open(out / "report.json") as f:
    got = json.load(f)

  # The reference: item-by-item embeddings, ITQ learned on the training photos, metrics.py.
  data = lists.load_split(tiny_synthetic, "synthetic")
  train_photos = [r for r in data.train if r.domain == domains.PHOTO]
  query_z, gallery_z, train_z = (test_embedder.reference_embeddings(workdir, records)
                                 for records in (data.query, data.gallery, train_photos))
  query_labels = np.array([r.label for r in data.query])
  gallery_labels = np.array([r.label for r in data.gallery])
  itq = hashing.fit_itq(train_z, 8)
  expected = [
      metrics.evaluate(query_z, query_labels, gallery_z, gallery_labels),
      metrics.evaluate(hashing.encode(itq, query_z), query_labels, hashing.encode(itq, gallery_z),
                       gallery_labels, distance="hamming")]
  assert 0.3 < expected[0].metrics["map@all"] < 0.9  # not a degenerate ranking

  for name, records, z in (("query", data.query, query_z), ("gallery", data.gallery, gallery_z),
                           ("train_photos", train_photos, train_z)):
    stored = embeddings.load(str(out / "embeddings" / f"{name}.npz"))
    assert stored.paths == tuple(r.path for r in records)
    np.testing.assert_array_equal(stored.labels, [r.label for r in records])
    np.testing.assert_allclose(stored.embeddings, z, atol=2e-6)

  assert got["split"]["name"] == "synthetic"
  assert got["split"]["unseen_classes"] == list(data.unseen_classes)
  assert got["model"]["workdir"] == os.path.abspath(workdir)
  assert (got["model"]["which"], got["model"]["step"], got["model"]["image_size"]) == (
      "best", test_embedder.STEP, 32)
  assert (got["n_queries"], got["n_gallery"], got["n_queries_without_relevant"]) == (18, 18, 0)
  assert got["ap_variant"].startswith("interpolated (VOC 2010)")
  assert [r["embedding"]["label"] for r in got["results"]] == ["real 16-d", "ITQ 8-bit"]
  for section, evaluation in zip(got["results"], expected):
    assert section["n_excluded"] == 0
    for name in metrics.DEFAULT_METRICS:
      np.testing.assert_allclose(section["metrics"][name], evaluation.metrics[name], atol=1e-9)
      np.testing.assert_allclose(section["class_balanced"][name],
                                 evaluation.class_balanced[name], atol=1e-9)
      for c, class_name in enumerate(data.unseen_classes):
        np.testing.assert_allclose(section["per_class"][class_name][name],
                                   evaluation.per_class[name][c], atol=1e-9)
    np.testing.assert_allclose(section["pr_curve"]["precision"], evaluation.pr_precision,
                               atol=1e-9)
  assert f"| real 16-d | over queries | {100 * expected[0].metrics['map@all']:.2f} |" in (
      result.stdout)
  assert (out / "report.md").read_text() in result.stdout

  for name in ("retrieval_grid", "pr_curve", "per_class_ap_real", "per_class_ap_itq"):
    with Image.open(out / f"{name}.png") as image:
      assert image.format == "PNG" and min(image.size) >= 100
      image.load()  # decodes completely
  with Image.open(out / "retrieval_grid.png") as grid:
    assert grid.size == (9 * 140, 3 * 140)  # 3 classes x (query + 8 photos), 1.4 in at 100 dpi

  # The stored embeddings give the same report without the model.
  again = evaluate(f"--embeddings={out / 'embeddings'}", f"--output_dir={tmp_path / 'again'}",
                   "--hash_bits=8", "--split=synthetic")
  assert again.returncode == 0, again.stderr
  with open(tmp_path / "again" / "report.json") as f:
    assert json.load(f) == got

  wrong = evaluate(f"--embeddings={out / 'embeddings'}", f"--output_dir={tmp_path / 'x'}",
                   "--split=sketchy25")
  assert wrong.returncode != 0
  assert "--split=sketchy25 but" in wrong.stderr and "holds split 'synthetic'" in wrong.stderr
