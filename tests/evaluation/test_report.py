"""The report: its fields against the evaluation and plain counting, JSON validity, the table."""
import collections
import json

import numpy as np
import pytest

from zsbir_jax import domains
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import hashing
from zsbir_jax.evaluation import metrics
from zsbir_jax.evaluation import report

CLASSES = ("cup", "swan", "teddy_bear", "wine_bottle")
IDENTITY = embeddings.ModelIdentity(workdir="/runs/eff", which="best", step=1200,
                                    spec={"depth": 50, "embed_dim": 8}, image_size=224,
                                    crop_sketch_to_ink=False)


def embedding_set(labels, domain, rng):
  z = rng.standard_normal((len(labels), 8)).astype(np.float32)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  records = [lists.Record(f"/d/{CLASSES[c]}/{i}.png", c, domain) for i, c in enumerate(labels)]
  return embeddings.from_source(source.RecordSource(records), z, CLASSES, "sketchy25", IDENTITY)


def make_report():
  rng = np.random.default_rng(0)
  # Class 3 (wine_bottle) has queries but no gallery photo: its 2 queries are excluded.
  query = embedding_set([0] * 5 + [1] * 3 + [2] * 4 + [3] * 2, domains.SKETCH, rng)
  gallery = embedding_set([0] * 6 + [1] * 7 + [2] * 5, domains.PHOTO, rng)
  real = metrics.evaluate(query.embeddings, query.labels, gallery.embeddings, gallery.labels,
                          metrics=["map@all", "p@10", "map@5"])
  itq = hashing.fit_itq(rng.standard_normal((30, 8)), 4)
  hashed = metrics.evaluate(hashing.encode(itq, query.embeddings), query.labels,
                            hashing.encode(itq, gallery.embeddings), gallery.labels,
                            metrics=["map@all", "p@10", "map@5"], distance="hamming")
  results = [(report.EmbeddingKind("real", 8), real), (report.EmbeddingKind("itq", 4, 30), hashed)]
  return query, gallery, results, report.build(query, gallery, results)


def test_report_fields():
  query, gallery, results, built = make_report()
  assert built["split"]["name"] == "sketchy25"
  assert "zeroshot1" in built["split"]["description"]
  assert built["split"]["lists"] == "Sketchy/zeroshot1"
  assert built["split"]["unseen_classes"] == list(CLASSES)
  assert built["model"]["step"] == 1200 and built["model"]["workdir"] == "/runs/eff"
  assert (built["n_queries"], built["n_gallery"], built["n_queries_without_relevant"]) == (
      14, 18, 2)
  assert built["ap_variant"].startswith("interpolated (VOC 2010)")
  assert set(built["averaging"]) == {"metrics", "class_balanced"}
  real, hashed = built["results"]
  assert real["embedding"] == {"kind": "real", "label": "real 8-d", "dimensions": 8,
                               "distance": "euclidean",
                               "note": "L2-normalised: ranks as cosine similarity"}
  assert hashed["embedding"]["bits"] == 4 and hashed["embedding"]["distance"] == "hamming"
  assert "30 training-photo" in hashed["embedding"]["learned_on"]

  queries_per_class = collections.Counter(query.labels.tolist())
  photos_per_class = collections.Counter(gallery.labels.tolist())
  for section, (_, evaluation) in zip(built["results"], results):
    assert section["n_without_relevant"] == 2
    assert section["no_relevant"].startswith("exclude: excluded from every mean")
    assert section["map_at_k"].startswith("sake: SAKE's: AP on the first K ranks divided by "
                                          "min(K, n_pos)")
    for name in ("map@all", "p@10", "map@5"):
      per_query = evaluation.per_query[name]
      np.testing.assert_allclose(section["metrics"][name], np.mean(per_query[query.labels != 3]),
                                 rtol=1e-12)
      class_means = [np.mean(per_query[query.labels == c]) for c in range(3)]
      np.testing.assert_allclose(section["class_balanced"][name], np.mean(class_means),
                                 rtol=1e-12)
      for c, class_name in enumerate(CLASSES):
        row = section["per_class"][class_name]
        assert (row["n_queries"], row["n_gallery"]) == (queries_per_class[c],
                                                        photos_per_class[c])
        if c == 3:
          assert row[name] is None  # no relevant photo: no AP, not a zero
        else:
          np.testing.assert_allclose(row[name], class_means[c], rtol=1e-12)
    assert section["pr_curve"]["recall"][0] == 0.0 and len(section["pr_curve"]["recall"]) == 11


def test_written_json_and_markdown(tmp_path):
  _, _, _, built = make_report()
  json_path, markdown_path = report.write(built, str(tmp_path / "out"))
  with open(json_path) as f:
    assert json.load(f) == built  # strict JSON: no NaN anywhere
  with open(markdown_path) as f:
    table = f.read()
  assert "| embedding | averaging | mAP@all | P@10 | mAP@5 |" in table
  real = built["results"][0]
  assert (f"| real 8-d | over queries | {100 * real['metrics']['map@all']:.2f} | "
          f"{100 * real['metrics']['p@10']:.2f} | {100 * real['metrics']['map@5']:.2f} |") in table
  hashed_swan = built["results"][1]["per_class"]["swan"]["map@all"]
  assert (f"| swan | 3 | 7 | {100 * real['per_class']['swan']['map@all']:.2f} | "
          f"{100 * hashed_swan:.2f} |") in table
  assert "| wine_bottle | 2 | 0 | - | - |" in table
  assert "queries without a relevant item: 2." in table
  assert ("real 8-d: mAP@K sake: SAKE's: AP on the first K ranks divided by min(K, n_pos); "
          "queries without a relevant item (2): exclude: excluded from every mean.") in table
  assert "ITQ 4-bit: mAP@K sake" in table


def test_conventions_named_per_result():
  query, gallery, _, _ = make_report()
  sake = metrics.evaluate(query.embeddings, query.labels, gallery.embeddings, gallery.labels,
                          metrics=["map@5", "p@10"], no_relevant="sake")
  doodle = metrics.evaluate(query.embeddings, query.labels, gallery.embeddings, gallery.labels,
                            metrics=["map@5", "p@10"], map_at_k="doodle")
  built = report.build(query, gallery, [(report.EmbeddingKind("real", 8), sake),
                                        (report.EmbeddingKind("real", 8), doodle)])
  assert built["ranking"].startswith("by float64 Euclidean distances as scipy's cdist")
  first, second = built["results"]
  assert first["no_relevant"].startswith("sake: SAKE's: P@K = 0")
  assert first["map_at_k"].startswith("sake:") and second["map_at_k"].startswith("doodle:")
  assert second["no_relevant"].startswith("exclude:")
  assert first["n_without_relevant"] == second["n_without_relevant"] == 2
  # SAKE's convention counts the 2 queries without a relevant photo with P@10 = 0.
  assert first["metrics"]["p@10"] == pytest.approx(second["metrics"]["p@10"] * 12 / 14)
  table = report.to_markdown(built)
  assert "queries without a relevant item (2): sake: SAKE's: P@K = 0" in table
  assert "mAP@K doodle: Doodle-to-Search's" in table


def test_metric_titles():
  assert [report.metric_title(m) for m in ("map@all", "p@100", "map@200", "map_noninterp@all")] == [
      "mAP@all", "P@100", "mAP@200", "mAP(non-interp.)@all"]
