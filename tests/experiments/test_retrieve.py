"""experiments.retrieve as a real subprocess: its ranking is the NumPy cosine ranking."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.evaluation import test_embedder
from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.evaluation import embedder
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import search

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def setup(tiny_synthetic, tmp_path_factory):
  """A run, and its gallery embeddings written as experiments.evaluate writes them."""
  tmp = tmp_path_factory.mktemp("retrieve")
  workdir = str(tmp / "run")
  test_embedder.make_workdir(workdir)
  data = lists.load_split(tiny_synthetic, "synthetic")
  gallery = embeddings.from_source(
      source.RecordSource(data.gallery), test_embedder.reference_embeddings(workdir, data.gallery),
      data.unseen_classes, "synthetic", embedder.load_embedder(workdir).identity)
  path = str(tmp / "gallery.npz")
  embeddings.save(path, gallery)
  return workdir, data, gallery, path, tmp


def run_retrieve(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.retrieve", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_sketch_queries_rank_as_numpy(setup):
  workdir, data, gallery, path, tmp = setup
  queries = [data.query[0], data.query[7], data.query[14]]
  output = tmp / "sketches.json"
  result = run_retrieve(f"--gallery={path}", "--top_k=5", f"--json_output={output}",
                        *[q.path for q in queries])
  assert result.returncode == 0, result.stderr
  with open(output) as f:
    got = json.load(f)
  assert got["model"] == {"workdir": os.path.abspath(workdir), "step": test_embedder.STEP}
  similarity = test_embedder.reference_embeddings(workdir, queries) @ gallery.embeddings.T
  for query, item, row in zip(queries, got["queries"], similarity):
    order = np.argsort(-row, kind="stable")[:5]
    assert item["query"] == query.path
    assert [r["path"] for r in item["results"]] == [gallery.paths[j] for j in order]
    assert [r["rank"] for r in item["results"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([r["score"] for r in item["results"]], row[order], atol=1e-5)
    assert [r["class"] for r in item["results"]] == [
        data.unseen_classes[gallery.labels[j]] for j in order]
  best = got["queries"][0]["results"][0]
  assert f"    1  {best['score']:+.4f}  {best['class']}" in result.stdout
  assert best["path"] in result.stdout


def test_gallery_photo_finds_itself(setup):
  _, data, _, path, _ = setup
  photo = data.gallery[4].path
  result = run_retrieve(f"--gallery={path}", "--top_k=3", "--domain=photo", photo)
  assert result.returncode == 0, result.stderr
  first = result.stdout.splitlines()[1]  # "  rank  score  class  path"
  rank, score = first.split()[:2]
  assert rank == "1" and first.endswith(photo) and abs(float(score) - 1.0) < 1e-5


def test_refuses_a_gallery_of_another_checkpoint(setup):
  _, data, gallery, _, _ = setup
  other = dataclasses.replace(gallery, model=dataclasses.replace(gallery.model, step=99))
  with pytest.raises(ValueError, match="embedded by step 99 .* has step 7"):
    search.search([data.query[0].path], other, 3, domains.SKETCH, 8)


def test_retriever_embeds_as_evaluation_and_filters_classes(setup):
  workdir, data, gallery, _, _ = setup
  retriever = search.load_retriever(gallery)
  queries = [data.query[1], data.query[9], data.gallery[2]]
  pixels = [images.load_rgb(q.path) for q in queries]
  z = np.concatenate([search.embed_images(retriever, pixels[:2], domains.SKETCH, batch_size=3),
                      search.embed_images(retriever, pixels[2:], domains.PHOTO)])
  # The evaluation pipeline (sharded over the 8 test devices) embeds the same files alike.
  expected = embedder.extract(retriever.embedder, source.RecordSource(queries), 8)
  np.testing.assert_allclose(z, expected, atol=2e-6)
  labels = [0, 2]
  results = search.rank(retriever, z, 4, labels)
  g = gallery.embeddings.astype(np.float64)
  for query, items in zip(z.astype(np.float64), results):
    kept = np.flatnonzero(np.isin(gallery.labels, labels))
    order = kept[np.argsort(-(g[kept] @ query), kind="stable")[:4]]
    assert [r["path"] for r in items] == [gallery.paths[j] for j in order]
    # Exact near 0 too (the third query is a gallery photo: distance ~1e-6, not sqrt(eps)).
    np.testing.assert_allclose([r["distance"] for r in items],
                               [np.sqrt(np.sum((g[j] - query) ** 2)) for j in order],
                               rtol=1e-12, atol=1e-15)
