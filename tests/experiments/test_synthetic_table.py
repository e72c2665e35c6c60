"""experiments.synthetic_table and synthetic_workspace: the variants' configs and the table."""
import numpy as np

from experiments import main_job
from experiments import synthetic_table
from experiments import synthetic_workspace

WORKSPACE = synthetic_workspace.Workspace("/nowhere")


def test_a_variants_config_has_the_workspace_and_seed():
  config = synthetic_workspace.run_config(WORKSPACE, "full-kd", 1)
  assert config.recipe == "full-kd" and config.loss.kd.weight == 0 and config.seed == 1
  assert config.data.root == "/nowhere/data" and config.init.backbone == "/nowhere/pretrained"
  assert {"none", "full", "full-cls", "full-mw"} <= set(synthetic_table.VARIANTS)


def fake_results(name, map_all, seconds=10.0):
  return [{"variant": name, "seed": s, "epochs": 5, "train_seconds": seconds,
           "n_queries": 750, "n_gallery": 750,
           "metrics": {"map@all": m, "p@100": m / 2, "map@200": m / 3, "p@200": m / 4}}
          for s, m in enumerate(map_all)]


def test_table_means_stds_and_deltas(tmp_path):
  results = {"full": fake_results("full", [0.16, 0.17, 0.18]),
             "full-kd": fake_results("full-kd", [0.10, 0.12, 0.14]),
             "full-da": fake_results("full-da", [0.165, 0.17, 0.175])}
  markdown = synthetic_table.table(results, "python -m experiments.synthetic_table")
  rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown.splitlines()
          if line.startswith("| full")}
  std = np.std([10.0, 12.0, 14.0], ddof=1)
  assert f"12.00 ± {std:.2f}" in rows["full-kd"]  # mAP@all in percent, sample std
  assert "| -5.00* |" in rows["full-kd"]          # beyond the combined spread
  assert "| +0.00 |" in rows["full-da"]           # within it: no mark
  assert "seeds 0, 1, 2" in markdown and "5 epochs" in markdown

  path = tmp_path / "table.md"
  main_job.write_results(str(path), markdown)
  path.write_text(path.read_text() + "\n## Discussion\n\nHand-written.\n")
  main_job.write_results(str(path), markdown.replace("12.00", "13.00"))
  text = path.read_text()
  assert "13.00" in text and text.endswith("## Discussion\n\nHand-written.\n")
