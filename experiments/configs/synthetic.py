r"""The built-in synthetic benchmark (no download): 100 seen / 25 unseen shape classes, 64 px.

  python -m experiments.train --config=experiments/configs/synthetic.py:recipe=full \
      --workdir=runs/synthetic_full --config.data.root=runs/synthetic_data \
      --config.init.backbone=runs/synthetic_pretrained \
      --config.init.knowledge=runs/synthetic_knowledge.npz

Arguments: recipe (none, ce, sake, eff, bkd, full, or an ablation of full such as full-kd:
common.ABLATIONS), runlocal (tiny CPU smoke run).
A reduced-width ResNet-18 stands in for ResNet-50 so that a 2-core CPU trains it in minutes.
"""
from experiments.configs import common
from experiments.configs import pretrain_backbone


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, recipe="full", runlocal=False)
  config = common.training_config(common.apply_recipe(common.base_config(), args.recipe))
  config.model.update(depth=18, width=0.25, embed_dim=128)
  config.data.update(split="synthetic", image_size=64, classes_per_batch=8, items_per_class=4,
                     workers=0, eval_batch_size=256)
  config.init.num_teacher_classes = 100
  # SAKE's 0.001^(epoch / epochs) decay is too steep for a 10-epoch run: cosine from 3e-3 gives
  # far higher held-out seen-sketch accuracy (figures: experiments/results/synthetic.md).
  config.optim.update(lr=3e-3, epochs=10, schedule="cosine", warmup_epochs=0.5)
  config.loss.ema_momentum = 0.99
  config.train.update(log_every=20, checkpoint_every=200)
  # Backbone pretraining on the photo-only pretraining classes (experiments.run_synthetic): the
  # run of experiments.pretrain_backbone; its seed, model and input size follow this config.
  config.pretrain = pretrain_backbone.get_config()
  if args.runlocal:
    common.runlocal(config)
  return config
