r"""TU-Berlin-30 (mAP@all and P@100), SAKE's training defaults: ResNet-50, 224 px, batch 40, Adam 1e-4, 20 epochs.

  python -m experiments.train --config=experiments/configs/tuberlin30.py:recipe=full \
      --workdir=runs/tuberlin30_full --config.data.root=/data \
      --config.init.backbone=ckpt/resnet50_imagenet \
      --config.init.knowledge=/data/tuberlin30_knowledge.npz

Arguments: recipe (none, ce, sake, eff, bkd, full, or an ablation of full such as full-kd:
common.ABLATIONS), runlocal (tiny CPU smoke run).
From a TFDS build (data/README.md) instead of the list files: --config.data.source=tfds
--config.data.tfds_data_dir=/data/tfds (common.training_config documents the data block).
See experiments/REPRODUCE.md for the whole procedure.
"""
from experiments.configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, recipe="full", runlocal=False)
  config = common.training_config(common.apply_recipe(common.base_config(), args.recipe))
  config.data.split = "tuberlin30"
  if args.runlocal:
    common.runlocal(config)
  return config
