"""The built-in synthetic benchmark as a workspace: data, pretrained backbone, knowledge, runs.

A workspace directory holds everything a run on the synthetic benchmark needs, each made once
and reused: `data/` (the generated benchmark), `pretrained/` (the backbone pretrained on the
photo-only pretraining classes, the stand-in for ImageNet) and `knowledge.npz` (EFF's class-wise
targets from that backbone). Recipes are then trained into run directories and evaluated on the
unseen classes. Used by `experiments.run_synthetic` (the main job) and
`experiments.synthetic_table` (the 3-seed results table); defines no flags, so both
commands can import it.
"""
import dataclasses
import os
from typing import Callable

import ml_collections

from experiments import main_job
from experiments.configs import synthetic as synthetic_config
from zsbir_jax.data import lists
from zsbir_jax.data import source
from zsbir_jax.data import synthetic
from zsbir_jax.evaluation import embeddings
from zsbir_jax.evaluation import zero_shot
from zsbir_jax.method import knowledge
from zsbir_jax.models import pretrained
from zsbir_jax.training import pretraining

TRAINED_RUN = "train_full"  # run_synthetic's trained recipe


@dataclasses.dataclass(frozen=True)
class Workspace:
  """Paths of a synthetic-benchmark workspace (see the module docstring)."""
  workdir: str

  @property
  def root(self) -> str:
    return os.path.join(self.workdir, "data")

  @property
  def backbone(self) -> str:
    return os.path.join(self.workdir, "pretrained")

  @property
  def knowledge(self) -> str:
    return os.path.join(self.workdir, "knowledge.npz")


def generate_data(workspace: Workspace, seed: int, log: Callable[[str], None] = print) -> None:
  """Writes the default synthetic benchmark into `workspace.root` unless it is already there."""
  spec = lists.get_split("synthetic")
  if os.path.isfile(os.path.join(workspace.root, spec.dataset_dir, spec.manifest)):
    log(f"synthetic benchmark already in {workspace.root}")
    return
  manifest = synthetic.generate(workspace.root, synthetic.SyntheticConfig(seed=seed), workers=2)
  log(f"wrote the synthetic benchmark to {workspace.root}: {manifest['counts']}")


def pretrain_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The pretraining run of a synthetic config: its `pretrain` block with the run's seed, the
  retrieval model's backbone and input size (so that the backbone fits the model)."""
  pretrain = ml_collections.ConfigDict(config.pretrain.to_dict())
  pretrain.seed = config.seed
  pretrain.model.update(backbone=config.model.backbone, depth=config.model.depth,
                        variant=config.model.variant, width=config.model.width)
  pretrain.data.image_size = config.data.image_size
  return pretrain


def pretrain_backbone(workspace: Workspace, config: ml_collections.ConfigDict,
                      log: Callable[[str], None] = print) -> None:
  """Pretrains the backbone of `config` on the pretraining classes (once; cached on disk)."""
  if os.path.isdir(workspace.backbone):
    log(f"pretrained backbone already in {workspace.backbone}")
    return
  pretrain = pretrain_config(config)
  result = pretraining.pretrain(
      lists.load_pretrain(workspace.root), pretrain,
      report=lambda e: log(f"pretrain step {e['step']} loss {e['loss']:.3f} "
                           f"acc {e['accuracy']:.3f} {e['images_per_second']:.0f} img/s"))
  pretrained.save(workspace.backbone, result.variables,
                  pretraining.backbone_spec(pretrain, result))
  log(f"pretrained backbone: validation accuracy {result.val_accuracy:.3f} on the "
      f"pretraining classes -> {workspace.backbone}")


def prepare_knowledge(workspace: Workspace, config: ml_collections.ConfigDict) -> None:
  """Writes the backbone's class-wise knowledge table (once), from a `run_config`'s data."""
  if not os.path.isfile(workspace.knowledge):
    knowledge.save(workspace.knowledge, knowledge.prepare(
        source.open_split(config.data), workspace.backbone, config.data.image_size,
        config.data.eval_batch_size, temperature=1.0))


def run_config(workspace: Workspace, recipe: str, seed: int,
               data_check: str = "off") -> ml_collections.ConfigDict:
  """The synthetic config of `recipe` (a recipe or an ablation of full, configs/common.py) in
  `workspace`. `data_check` is the config's data.check mode (the workspace's data is checked
  once, by the first run)."""
  config = synthetic_config.get_config(f"recipe={recipe}")
  with config.unlocked():
    config.seed = seed
    config.data.update(root=workspace.root, check=data_check)
    config.init.update(backbone=workspace.backbone, knowledge=workspace.knowledge)
  return config


def evaluate_unseen(run_dir: str, workspace: Workspace, config: ml_collections.ConfigDict
                    ) -> tuple[dict[str, embeddings.EmbeddingSet], list, dict]:
  """`main_job.evaluate_unseen` of the run on the workspace's synthetic split."""
  return main_job.evaluate_unseen(run_dir, config.data)

def unseen_gallery(workspace: Workspace, which: str = "best", batch_size: int = 128) -> str:
  """The unseen gallery embeddings of the workspace's trained run; embedded if missing.

  Written with the queries to <run>/eval/embeddings/ ("eval_latest" for the latest
  checkpoint), as `experiments.evaluate --workdir=<run> --root=<data> --split=synthetic
  --output_dir=<run>/eval` writes them.
  """
  run = os.path.join(workspace.workdir, TRAINED_RUN)
  directory = os.path.join(run, "eval" if which == "best" else f"eval_{which}",
                           zero_shot.EMBEDDINGS_DIR)
  path = os.path.join(directory, f"{zero_shot.GALLERY}.npz")
  if not os.path.isfile(path):
    data = synthetic_config.get_config().data
    data.root = workspace.root
    sets = zero_shot.compute_embeddings(run, which, source.open_split(data), 0, batch_size,
                                        workers=0, with_train_photos=False)
    os.makedirs(directory, exist_ok=True)
    for name, s in sets.items():
      embeddings.save(os.path.join(directory, f"{name}.npz"), s)
  return path
