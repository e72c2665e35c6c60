"""experiments.evaluate as a real subprocess on a synthetic run: report against direct metrics."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
from scipy.spatial import distance

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

  # The reference: item-by-item embeddings. They agree with the command's batched ones to
  # ~2e-7 (up to 2e-6 measured on a loaded machine), which cannot move the real-valued ranking
  # or the codes of this data (margins checked below). It can move the ITQ fit: its sign step
  # B = sgn(V R) is discontinuous, and a training photo with V R within ~1e-6 of 0 at some
  # iteration leads to another fixed point (on this data, perturbing the training embeddings by
  # 2e-7 turned hashed mAP@all 0.5306 into 0.4897 in 15 of 100 tries). So the hash is the one
  # fitted on the stored training embeddings, which the command hashed: same data, same hash.
  data = lists.load_split(tiny_synthetic, "synthetic")
  train_photos = [r for r in data.train if r.domain == domains.PHOTO]
  stored = {name: embeddings.load(str(out / "embeddings" / f"{name}.npz"))
            for name in ("query", "gallery", "train_photos")}
  tolerance = 2e-6
  for name, records in (("query", data.query), ("gallery", data.gallery),
                        ("train_photos", train_photos)):
    assert stored[name].paths == tuple(r.path for r in records)
    np.testing.assert_array_equal(stored[name].labels, [r.label for r in records])
    z = test_embedder.reference_embeddings(workdir, records)
    np.testing.assert_allclose(stored[name].embeddings, z, atol=tolerance)
    stored[name] = (stored[name], z)
  (query, query_z), (gallery, gallery_z) = stored["query"], stored["gallery"]
  itq = hashing.fit_itq(stored["train_photos"][0].embeddings, 8)
  expected = [
      metrics.evaluate(query.embeddings, query.labels, gallery.embeddings, gallery.labels),
      metrics.evaluate(hashing.encode(itq, query.embeddings), query.labels,
                       hashing.encode(itq, gallery.embeddings), gallery.labels,
                       distance="hamming")]
  assert 0.3 < expected[0].metrics["map@all"] < 0.9  # not a degenerate ranking

  # Each embedding moves by at most sqrt(D) x tolerance in L2: a query's distances by twice
  # that, V R by that (orthonormal projection and rotation). With larger margins, the reference
  # embeddings give the same rankings and codes, hence the same numbers.
  shift = np.sqrt(query.embeddings.shape[1]) * tolerance
  d = distance.cdist(query_z.astype(np.float64), gallery_z.astype(np.float64))
  relevant = query.labels[:, None] == gallery.labels[None]
  gaps = np.abs(np.where(relevant, d, np.nan)[:, :, None] - np.where(relevant, np.nan, d)[:, None])
  assert np.nanmin(gaps) > 4 * shift
  assert np.abs(hashing._rotated(itq, np.concatenate([query_z, gallery_z]))).min() > shift
  from_reference = [
      metrics.evaluate(query_z, query.labels, gallery_z, gallery.labels),
      metrics.evaluate(hashing.encode(itq, query_z), query.labels,
                       hashing.encode(itq, gallery_z), gallery.labels, distance="hamming")]
  for again, evaluation in zip(from_reference, expected):
    for name in metrics.DEFAULT_METRICS:
      np.testing.assert_array_equal(again.per_query[name], evaluation.per_query[name])

  assert got["split"]["name"] == "synthetic"
  assert got["split"]["unseen_classes"] == list(data.unseen_classes)
  assert got["model"]["workdir"] == os.path.abspath(workdir)
  assert (got["model"]["which"], got["model"]["step"], got["model"]["image_size"]) == (
      "best", test_embedder.STEP, 32)
  assert (got["n_queries"], got["n_gallery"], got["n_queries_without_relevant"]) == (18, 18, 0)
  assert got["ap_variant"].startswith("interpolated (VOC 2010)")
  assert [r["embedding"]["label"] for r in got["results"]] == ["real 16-d", "ITQ 8-bit"]
  for section, evaluation in zip(got["results"], expected):  # Same inputs: the same numbers.
    assert section["n_without_relevant"] == 0
    assert section["map_at_k"].startswith("sake:") and section["no_relevant"].startswith("exclude")
    for name in metrics.DEFAULT_METRICS:
      assert section["metrics"][name] == evaluation.metrics[name]
      assert section["class_balanced"][name] == evaluation.class_balanced[name]
      for c, class_name in enumerate(data.unseen_classes):
        assert section["per_class"][class_name][name] == evaluation.per_class[name][c]
    np.testing.assert_array_equal(section["pr_curve"]["precision"], evaluation.pr_precision)
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
