"""The ImageNet agreement benchmark, on a few generated images (CI has no ImageNet images)."""
import numpy as np
from PIL import Image

from experiments.benchmarks import imagenet_agreement


def test_flax_and_torch_predictions_agree_on_generated_images(tmp_path):
  rng = np.random.RandomState(0)
  for index, size in enumerate([(300, 240), (240, 410), (256, 256)]):
    pixels = rng.randint(0, 256, (*size, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"n{index:08d}_class.png")
  (tmp_path / "README.md").write_text("not an image")
  assert imagenet_agreement.load_image(str(tmp_path / "n00000001_class.png")).shape == (224, 224, 3)
  result = imagenet_agreement.agreement(str(tmp_path), batch_size=2)
  assert result["images"] == 3 and result["agree"] == 3
  assert result["max_logit_rel_err"] <= 1e-5
  assert result["torch_top1"] == result["flax_top1"]
