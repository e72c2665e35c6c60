"""The Sketchy-mini results command (experiments.sketchy_mini_table; its pieces in
sketchy_mini_job): its table from given results, the recipe it selects for Sketchy-21-mini, and a
tiny real run on a hand-made tree that resumes without redoing anything."""
import json
import os
import subprocess
import sys

import pytest

from experiments import sketchy_mini_job
from experiments.configs import sketchy_mini as sketchy_mini_config
from tests.data.test_sketchy_mini import make_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The command as a user runs it: one CPU device (not the tests' 8).
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"PYTHONPATH": ROOT}


def fake(map_all, seen):
  return [{"seen_accuracy": a, "n_queries": 625, "n_gallery": 625,
           "metrics": {"map@all": m, "p@100": m / 2, "map@200": m / 3, "p@200": m / 4}}
          for m, a in zip(map_all, seen)]


def test_table_rows_deltas_and_the_selected_recipe():
  results = {"sketchy25_mini": {
      ("jax", "none"): fake([0.17, 0.17, 0.17], [0.01, 0.01, 0.01]),
      ("jax", "eff"): fake([0.20, 0.22, 0.24], [0.30, 0.31, 0.32]),
      ("jax", "full"): fake([0.30, 0.30, 0.30], [0.20, 0.20, 0.20]),
      ("pytorch", "eff"): fake([0.21, 0.23, 0.25], [0.30, 0.30, 0.30]),
      ("pytorch", "full"): fake([0.10, 0.10, 0.10], [0.2, 0.2, 0.2]),
      ("jax", "full-kd"): fake([0.35], [0.9])}}
  # Selection reads held-out seen accuracy only: eff, though full scores higher on unseen; an
  # ablation is never selected.
  assert sketchy_mini_job.selected_recipe(results["sketchy25_mini"]) == "eff"
  markdown = sketchy_mini_job.table(results, sketchy_mini_config.get_config(), "cmd")
  lines = markdown.splitlines()
  assert "## sketchy25_mini: eff, JAX and PyTorch" in lines
  recipes = lines[lines.index("## sketchy25_mini: recipes") + 6:][:3]
  assert recipes[0].startswith("| jax | none | 17.00 ± 0.00 |")
  assert recipes[0].endswith("| 3 | - |")
  assert recipes[1].startswith("| jax | eff | 22.00 ± 2.00 |")
  assert recipes[1].endswith("| +5.00* |")  # beyond the combined spread
  eff = lines[lines.index("## sketchy25_mini: eff, JAX and PyTorch") + 5]
  assert eff.startswith("| pytorch | eff | 23.00 ± 2.00 |") and eff.endswith("| +1.00 |")  # agree
  full = lines[lines.index("## sketchy25_mini: full, JAX and PyTorch") + 5]
  assert full.endswith("| -20.00* |")  # differ
  ablations = lines.index("## sketchy25_mini: single-term ablations of full (full-x: without x; "
                          "mw: the modality weighting)")
  assert lines[ablations + 4].startswith("| jax | full | 30.00 ± 0.00 |")
  assert lines[ablations + 5].startswith("| jax | full-kd | 35.00 ± 0.00 |")
  assert lines[ablations + 5].endswith("| 1 | +5.00? |")
  assert not any(line.startswith("| jax | full-kd") for line in lines[:ablations])
  assert "160 px, batch 32, 3 epochs" in markdown
  # One seed a side: no spread to judge agreement by, so neither mark but a ?.
  one_seed = {"sketchy25_mini": {k: v[:1] for k, v in results["sketchy25_mini"].items()}}
  single = sketchy_mini_job.table(one_seed, sketchy_mini_config.get_config(), "").splitlines()
  assert single[single.index("## sketchy25_mini: eff, JAX and PyTorch") + 5].endswith(
      "| 1 | +1.00? |")
  assert "625 query sketches x 625 gallery photos." in lines


def test_run_records_are_reused_only_with_their_config(tmp_path):
  config = sketchy_mini_config.get_config()
  record, calls = str(tmp_path / "sketchy25_mini" / "jax" / "eff" / "seed0.json"), []

  def compute():
    calls.append(1)
    return {"seen_accuracy": 0.5}

  first = sketchy_mini_job.cached(record, config, compute)
  assert first["seen_accuracy"] == 0.5 and first["config"]["data.image_size"] == 160
  # The machine's paths are not part of a record: another root reads the same record.
  config.data.root = "/elsewhere"
  assert sketchy_mini_job.cached(record, config, compute) == first and len(calls) == 1
  config.data.image_size, config.optim.epochs = 96, 5
  with pytest.raises(ValueError, match=r"another config \(differs in data.image_size, "
                     r"optim.epochs\)"):
    sketchy_mini_job.cached(record, config, compute)
  assert len(calls) == 1 and not os.path.exists(record + ".tmp")


def test_the_committed_tables_are_those_of_the_committed_records(tmp_path):
  def tables(markdown):  # from the first section to the hand-written discussion
    start, end = markdown.find("\n## "), markdown.find("## Discussion")
    return markdown[start if start >= 0 else len(markdown):end if end >= 0 else None].strip()

  output = tmp_path / "table.md"
  command = [sys.executable, "-m", "experiments.sketchy_mini_table", f"--output={output}"]
  untrained = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert untrained.returncode != 0 and "give --sketchy" in untrained.stderr
  regenerated = subprocess.run(command + ["--notrain"], cwd=ROOT, env=ENV, capture_output=True,
                               text=True)
  assert regenerated.returncode == 0, regenerated.stderr[-3000:]
  with open(os.path.join(ROOT, "experiments", "results", "sketchy_mini.md")) as f:
    committed = f.read()
  assert tables(committed) == tables(output.read_text() if output.exists() else "")
  assert "| jax | none |" in tables(committed)


def test_tiny_table_runs_both_splits_and_frameworks_and_resumes(tmp_path):
  tree, workdir, output = tmp_path / "tree", tmp_path / "runs", tmp_path / "table.md"
  records = tmp_path / "records"
  make_tree(str(tree), ("sketch", "photo"), photos=1)
  command = [sys.executable, "-m", "experiments.sketchy_mini_table", f"--sketchy={tree}",
             f"--workdir={workdir}", f"--records={records}", f"--output={output}",
             "--recipes=none,eff",
             "--torch_recipes=eff", "--seeds=0", "--ablations=",
             "--config.data.image_size=32", "--config.data.classes_per_batch=8",
             "--config.data.items_per_class=1", "--config.data.eval_batch_size=128",
             "--config.optim.epochs=1"]
  first = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "selected for sketchy21_mini by held-out seen-sketch accuracy: eff" in first.stdout
  runs = {(split, framework, recipe): records / split / framework / recipe / "seed0.json"
          for split, framework, recipe in [
              ("sketchy25_mini", "jax", "none"), ("sketchy25_mini", "jax", "eff"),
              ("sketchy25_mini", "pytorch", "eff"), ("sketchy21_mini", "jax", "none"),
              ("sketchy21_mini", "jax", "eff")]}
  written = {key: path.read_text() for key, path in runs.items()}
  for text in written.values():
    result = json.loads(text)
    assert 0 <= result["seen_accuracy"] <= 1
    assert all(0 <= v <= 1 for v in result["metrics"].values())
    assert result["config"]["data.image_size"] == 32 and "data.root" not in result["config"]
  # The PyTorch run trained the 2 steps and kept the better of its two selections.
  assert json.loads(written["sketchy25_mini", "pytorch", "eff"])["best_step"] in (1, 2)
  markdown = output.read_text()
  for heading in ("## sketchy25_mini: recipes", "## sketchy25_mini: eff, JAX and PyTorch",
                  "## sketchy21_mini: recipes"):
    assert heading in markdown
  assert "nan" not in markdown

  output.write_text(markdown + "\n## Discussion\n\nBy hand.\n")
  second = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert second.returncode == 0, second.stderr[-3000:]
  assert {key: path.read_text() for key, path in runs.items()} == written  # nothing redone
  assert output.read_text() == markdown + "\n## Discussion\n\nBy hand.\n"
