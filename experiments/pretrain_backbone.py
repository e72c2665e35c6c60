r"""Pretrains the synthetic benchmark's backbone on its photo-only set (the ImageNet stand-in).

  python -m experiments.make_synthetic --root=runs/synthetic_data
  python -m experiments.pretrain_backbone --root=runs/synthetic_data \
      --output=runs/synthetic_pretrained

Trains the config's backbone (num_classes = pretraining classes) with softmax cross-entropy and
SAKE's augmentation (zsbir_jax/training/pretraining.py), prints progress and the validation
accuracy, and writes a `pretrained.save` directory for `--config.init.backbone` and
`experiments.prepare_knowledge`. An existing output is never overwritten. The run is
experiments/configs/pretrain_backbone.py (the default --config); override any value with
--config.x.y=value, e.g. --config.optim.epochs=6.
"""
import os
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from zsbir_jax.data import lists
from zsbir_jax.models import pretrained
from zsbir_jax.training import pretraining
from zsbir_jax.training import setup

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "pretrain_backbone.py"),
    "Pretraining config file.", lock_config=True)
_ROOT = flags.DEFINE_string("root", None, "Data root holding Synthetic/ (make_synthetic).",
                            required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Backbone directory to write; must not exist.",
                              required=True)


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
  config = _CONFIG.value
  data = lists.load_pretrain(_ROOT.value)
  model = config.model
  print(f"pretraining {setup.architecture(model.backbone, model.depth, model.variant, model.width)}"
        f" on "
        f"{len(data.train)} photos of {len(data.classes)} classes, {config.data.image_size} px, "
        f"{config.optim.epochs} epochs", flush=True)
  result = pretraining.pretrain(data, config, report=print_progress)
  if jax.process_index() == 0:
    pretrained.save(output, result.variables, pretraining.backbone_spec(config, result))
  print(f"val accuracy {result.val_accuracy:.4f} on {len(data.val)} photos; wrote {output}")


if __name__ == "__main__":
  app.run(main)
