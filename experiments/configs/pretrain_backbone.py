r"""Backbone pretraining on the synthetic benchmark's photo-only set (the ImageNet stand-in).

  python -m experiments.pretrain_backbone --root=runs/synthetic_data \
      --output=runs/synthetic_pretrained --config.optim.epochs=6

The default command reads this file; override any value with --config.x.y=value. The model
matches experiments/configs/synthetic.py, whose `pretrain` block is this config.
"""
import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  common.parse_arg(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, the epoch permutations and the augmentation
  # ResNet-18 at width 0.25: the synthetic config's backbone (one 2-core CPU trains it in minutes).
  # backbone: 'resnet' (of depth) or 'efficientnet_lite' (Lite`variant`), as in common.py.
  config.model = ml_collections.ConfigDict(dict(backbone="resnet", depth=18, variant=0,
                                                width=0.25))
  config.data = ml_collections.ConfigDict(dict(
      image_size=64, batch_size=128, eval_batch_size=256,
      workers=0))  # data-loading processes (0: threads of this process)
  # Softmax cross-entropy of the classifier: the classification recipe of the training engine.
  config.loss = ml_collections.ConfigDict(dict(kind="classification"))
  # SGD with Nesterov momentum, a one-epoch warm-up and cosine decay: higher validation accuracy
  # than Adam at the same cost (figures: experiments/results/synthetic.md).
  config.optim = common.base_config().optim
  config.optim.update(name="sgd", lr=0.2, weight_decay=5e-4, momentum=0.9, nesterov=True,
                      schedule="cosine", epochs=10, warmup_epochs=1.0)
  config.log_every = 25  # steps between progress lines
  return config
