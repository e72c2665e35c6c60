"""experiments.synthetic_table and synthetic_workspace: the variants' configs and the table."""
import numpy as np
import pytest

from experiments import main_job
from experiments import synthetic_table
from experiments import synthetic_workspace

WORKSPACE = synthetic_workspace.Workspace("/nowhere")


@pytest.mark.parametrize("term", synthetic_workspace.LOSS_TERMS)
def test_each_ablation_removes_exactly_its_term(term):
  full = synthetic_workspace.run_config(WORKSPACE, "full", 1)
  ablated = synthetic_workspace.run_config(WORKSPACE, "full", 1, without=term)
  assert ablated.loss[term].weight == 0 and full.loss[term].weight > 0
  for other in set(synthetic_workspace.LOSS_TERMS) - {term}:
    assert ablated.loss[other].weight == full.loss[other].weight
  assert ablated.loss.modality_weighting and ablated.seed == 1
  assert ablated.data.root == "/nowhere/data" and ablated.init.backbone == "/nowhere/pretrained"


def test_modality_weighting_ablation_and_bad_terms():
  config = synthetic_workspace.run_config(WORKSPACE, "full", 0, without="mw")
  assert not config.loss.modality_weighting
  assert all(config.loss[t].weight > 0 for t in synthetic_workspace.LOSS_TERMS)
  with pytest.raises(ValueError, match="eff has no term 'kd'"):
    synthetic_workspace.run_config(WORKSPACE, "eff", 0, without="kd")
  assert set(synthetic_table.VARIANTS) >= {"none", "ce", "sake", "eff", "bkd", "full",
                                           "full - cls", "full - mw"}


def fake_results(name, map_all, seconds=10.0):
  return [{"variant": name, "seed": s, "epochs": 5, "train_seconds": seconds,
           "n_queries": 750, "n_gallery": 750,
           "metrics": {"map@all": m, "p@100": m / 2, "map@200": m / 3, "p@200": m / 4}}
          for s, m in enumerate(map_all)]


def test_table_means_stds_and_deltas(tmp_path):
  results = {"full": fake_results("full", [0.16, 0.17, 0.18]),
             "full - kd": fake_results("full - kd", [0.10, 0.12, 0.14]),
             "full - da": fake_results("full - da", [0.165, 0.17, 0.175])}
  markdown = synthetic_table.table(results, "python -m experiments.synthetic_table")
  rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown.splitlines()
          if line.startswith("| full")}
  std = np.std([10.0, 12.0, 14.0], ddof=1)
  assert f"12.00 ± {std:.2f}" in rows["full - kd"]  # mAP@all in percent, sample std
  assert "| -5.00* |" in rows["full - kd"]            # beyond the combined spread
  assert "| +0.00 |" in rows["full - da"]             # within it: no mark
  assert "seeds 0, 1, 2" in markdown and "5 epochs" in markdown

  path = tmp_path / "table.md"
  main_job.write_results(str(path), markdown)
  path.write_text(path.read_text() + "\n## Discussion\n\nHand-written.\n")
  main_job.write_results(str(path), markdown.replace("12.00", "13.00"))
  text = path.read_text()
  assert "13.00" in text and text.endswith("## Discussion\n\nHand-written.\n")
