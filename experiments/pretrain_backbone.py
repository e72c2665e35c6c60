r"""Pretrains the synthetic benchmark's backbone on its photo-only set (the ImageNet stand-in).

  python -m experiments.make_synthetic --root=runs/synthetic_data
  python -m experiments.pretrain_backbone --root=runs/synthetic_data \
      --output=runs/synthetic_pretrained

Trains ResNet(num_classes = pretraining classes) with softmax cross-entropy and SAKE's
augmentation (zsbir_jax/training/pretraining.py), prints progress and the validation accuracy, and
writes a `pretrained.save` directory for `--config.init.backbone` and
`experiments.prepare_knowledge`. An existing output is never overwritten.

The defaults (ResNet-18 at width 0.25, 64 px, batch 128, Adam lr 2e-3 with a one-epoch warm-up
and cosine decay, 10 epochs) take about 2 minutes on a 2-core CPU and match the model of
experiments/configs/synthetic.py.
"""
import os
import sys

from absl import app
from absl import flags
import jax

from experiments.configs import common
from zsbir_jax.data import lists
from zsbir_jax.models import pretrained
from zsbir_jax.training import pretraining

_ROOT = flags.DEFINE_string("root", None, "Data root holding Synthetic/ (make_synthetic).",
                            required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Backbone directory to write; must not exist.",
                              required=True)
_DEPTH = flags.DEFINE_enum("depth", "18", ["18", "34", "50", "101"], "ResNet depth.")
_WIDTH = flags.DEFINE_float("width", 0.25, "Channel multiplier (1.0 is torchvision's model).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Input side in pixels.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "Training epochs (passes over the photos).")
_OPTIMIZER = flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam", "adamw"],
                               "optim.name of training.optim (SGD: Nesterov momentum 0.9).")
_LR = flags.DEFINE_float("lr", 0.2, "Peak learning rate (cosine decay to 0).")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 5e-4, "Weight decay.")
_WARMUP_EPOCHS = flags.DEFINE_float("warmup_epochs", 1.0, "Linear warm-up length in epochs.")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation, shuffling and augmentation seed.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Data-loading worker processes.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 25, "Steps between progress lines.")


def make_config() -> pretraining.PretrainConfig:
  """The pretraining run the flags describe."""
  optim = common.base_config().optim
  optim.update(name=_OPTIMIZER.value, lr=_LR.value, weight_decay=_WEIGHT_DECAY.value,
               momentum=0.9, nesterov=True, schedule="cosine", epochs=_EPOCHS.value,
               warmup_epochs=_WARMUP_EPOCHS.value)
  return pretraining.PretrainConfig(
      optim=optim, depth=int(_DEPTH.value), width=_WIDTH.value, image_size=_IMAGE_SIZE.value,
      batch_size=_BATCH_SIZE.value, seed=_SEED.value, workers=_WORKERS.value,
      log_every=_LOG_EVERY.value)


def print_progress(entry: dict[str, float]) -> None:
  print(f"step {entry['step']:5d}  epoch {entry['epoch']:5.2f}  loss {entry['loss']:.4f}  "
        f"train acc {entry['accuracy']:.3f}  lr {entry['learning_rate']:.2e}  "
        f"{entry['images_per_second']:6.0f} img/s  {entry['seconds']:6.1f} s", flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  output = _OUTPUT.value
  if os.path.exists(output):
    sys.exit(f"error: output {output} already exists; refusing to overwrite it")
  config = make_config()
  data = lists.load_pretrain(_ROOT.value)
  print(f"pretraining ResNet-{config.depth} (width {config.width}) on {len(data.train)} photos "
        f"of {len(data.classes)} classes, {config.image_size} px, {config.optim.epochs} epochs",
        flush=True)
  result = pretraining.pretrain(data, config, report=print_progress)
  spec = pretrained.BackboneSpec(
      depth=config.depth, width=config.width, num_classes=len(data.classes),
      source=(f"synthetic-pretrain:seed={config.seed}:steps={result.steps}"
              f":val_acc={result.val_accuracy:.2f}"))
  if jax.process_index() == 0:
    pretrained.save(output, result.variables, spec)
  print(f"val accuracy {result.val_accuracy:.4f} on {len(data.val)} photos; wrote {output}")


if __name__ == "__main__":
  app.run(main)
