r"""Input pipeline throughput per worker: grain + one PIL warp against PyTorch DataLoaders.

  python -m experiments.benchmarks.input_pipeline [--num_images=256] [--batches=24]

Writes `num_images` JPEG photos of 256-300 px (gradients, shapes and noise, quality 90, about
the size of Sketchy's photos) to a temporary directory, then measures images/second of batches
of 224 x 224 augmented, normalised float32 images, each loader with one worker process:

* zsbir_jax: the training pipeline (P x K sampler, PIL decode, SAKE's augmentation as one
  bilinear `Image.transform`, normalisation), grain with one worker process.
* SAKE (PyTorch): SAKE's own recipe, cv2.imread + skimage `warp(AffineTransform)` +
  torchvision Resize/ToTensor/Normalize, in a torch DataLoader; only if cv2 and skimage import.
* torchvision v2 (PyTorch): PIL decode + transforms.v2 RandomHorizontalFlip/RandomAffine
  (approximating SAKE's per-component probabilities) + Resize/Normalize.

Every file is listed as a sketch and as a photo so that the P x K sampler can run; the work per
item is the same. The first batch (worker start-up) is not timed; the loaders run in turn
`repeats` times and the best run of each is reported.
"""
from collections.abc import Callable
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw
import torch
from torch.utils import data as torch_data
from torchvision.transforms import v2

from zsbir_jax import domains
from zsbir_jax.data import augment
from zsbir_jax.data import lists
from zsbir_jax.data import pipeline
from zsbir_jax.data import sampler as sampler_lib
from zsbir_jax.data import source

_NUM_IMAGES = flags.DEFINE_integer("num_images", 256, "JPEG photos to generate.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 16, "Classes the photos are spread over.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size (2 P K with K = 2).")
_BATCHES = flags.DEFINE_integer("batches", 24, "Timed batches per run.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Runs per loader; the best is reported.")
_SIZE = flags.DEFINE_integer("size", 224, "Output image size.")

_MEAN, _STD = list(augment.IMAGENET_MEAN), list(augment.IMAGENET_STD)


def make_photos(root: str, num: int, num_classes: int) -> list[str]:
  """Writes `num` photo-like JPEGs of 256-300 px under root/<class>/; returns their paths."""
  rng = np.random.default_rng(0)
  paths = []
  for i in range(num):
    w, h = rng.integers(256, 301, size=2)
    ramp = np.linspace(0, 1, int(w))[None, :, None] * rng.uniform(0, 255, 3)
    base = ramp + np.linspace(0, 1, int(h))[:, None, None] * rng.uniform(0, 255, 3)
    image = Image.fromarray(np.clip(base / 2 + rng.normal(0, 12, base.shape), 0, 255)
                            .astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
      x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
      box = [x0, y0, x0 + rng.uniform(20, 120), y0 + rng.uniform(20, 120)]
      draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    folder = os.path.join(root, f"c{i % num_classes:02d}")
    os.makedirs(folder, exist_ok=True)
    paths.append(os.path.join(folder, f"{i:04d}.jpg"))
    image.save(paths[-1], quality=90)
  return paths


def _sake_random_transform(image: np.ndarray) -> np.ndarray:
  """SAKE's augmentation (skimage warp about the origin, black fill), with probability 0.7."""
  from skimage.transform import AffineTransform, warp  # pylint: disable=g-import-not-at-top
  if np.random.random() < 0.5:
    image = image[:, ::-1, :]
  sx, sy = np.random.uniform(0.7, 1.3, 2) if np.random.random() < 0.5 else (1.0, 1.0)
  rotation = np.random.uniform(-np.pi / 6, np.pi / 6) if np.random.random() < 0.5 else 0.0
  tx, ty = np.random.uniform(-10, 10, 2) if np.random.random() < 0.5 else (0.0, 0.0)
  if np.random.random() >= 0.7:
    return image
  transform = AffineTransform(scale=(sx, sy), rotation=rotation, translation=(tx, ty))
  return warp(image, transform.inverse, preserve_range=True).astype(np.uint8)


class SakeDataset(torch_data.Dataset):
  """SAKE's loading: cv2 decode, skimage augmentation, PIL resize, tensor normalisation."""

  def __init__(self, paths: list[str], size: int):
    from torchvision import transforms  # pylint: disable=g-import-not-at-top
    self._paths = paths
    self._transform = transforms.Compose([
        transforms.ToPILImage(), transforms.Resize([size, size]), transforms.ToTensor(),
        transforms.Normalize(_MEAN, _STD)])

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int):
    import cv2  # pylint: disable=g-import-not-at-top
    image = cv2.cvtColor(cv2.imread(self._paths[index]), cv2.COLOR_BGR2RGB)
    return self._transform(_sake_random_transform(image)), index


class TorchvisionDataset(torch_data.Dataset):
  """PIL decode and a torchvision.transforms.v2 approximation of SAKE's augmentation."""

  def __init__(self, paths: list[str], size: int):
    self._paths = paths
    self._transform = v2.Compose([
        v2.RandomApply([v2.RandomHorizontalFlip(0.5), v2.RandomAffine(
            degrees=30, translate=(10 / 256, 10 / 256), scale=(0.7, 1.3),
            interpolation=v2.InterpolationMode.BILINEAR)], p=0.7),
        v2.Resize([size, size]), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(_MEAN, _STD)])

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int):
    with Image.open(self._paths[index]) as image:
      return self._transform(image.convert("RGB")), index


def _rate(next_batch: Callable[[], int]) -> float:
  """Images/second of `next_batch` (returning the batch size), first call excluded."""
  next_batch()
  start = time.perf_counter()
  count = sum(next_batch() for _ in range(_BATCHES.value))
  return count / (time.perf_counter() - start)


def measure_grain(paths: list[str]) -> float:
  records = [lists.Record(p, int(os.path.basename(os.path.dirname(p))[1:]), d)
             for d in (domains.SKETCH, domains.PHOTO) for p in paths]
  src = source.RecordSource(records)
  sampler = sampler_lib.PKSampler(src.labels, src.domains, _BATCH.value // 4, 2, seed=0)
  ds = pipeline.train_dataset(src, sampler, augment.AugmentConfig(size=_SIZE.value), seed=0,
                              num_epochs=100)
  it = pipeline.make_iterator(ds, num_workers=1, num_threads=0)
  try:
    return _rate(lambda: len(next(it)["label"]))
  finally:
    it.close()


def measure_torch(dataset: torch_data.Dataset) -> float:
  sampler = torch_data.RandomSampler(dataset, replacement=True, num_samples=10**6,
                                     generator=torch.Generator().manual_seed(0))
  it = iter(torch_data.DataLoader(dataset, batch_size=_BATCH.value, sampler=sampler,
                                  num_workers=1))
  return _rate(lambda: len(next(it)[1]))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _BATCH.value % 4:
    raise app.UsageError(f"--batch_size {_BATCH.value} must be a multiple of 4 (2 P K, K=2)")
  torch.set_num_threads(1)
  loaders = {"zsbir_jax (grain, PIL warp)": measure_grain}
  try:
    import cv2  # pylint: disable=g-import-not-at-top,unused-import
    import skimage  # pylint: disable=g-import-not-at-top,unused-import
    loaders["SAKE (torch, cv2 + skimage warp)"] = lambda p: measure_torch(
        SakeDataset(p, _SIZE.value))
  except ImportError:
    print("cv2 / skimage not importable: SAKE's own loader is not measured")
  loaders["torchvision v2 (torch, PIL)"] = lambda p: measure_torch(
      TorchvisionDataset(p, _SIZE.value))
  with tempfile.TemporaryDirectory() as root:
    paths = make_photos(root, _NUM_IMAGES.value, _NUM_CLASSES.value)
    size_kb = np.mean([os.path.getsize(p) for p in paths]) / 1024
    print(f"{len(paths)} JPEGs, mean {size_kb:.0f} KiB; batches of {_BATCH.value} at "
          f"{_SIZE.value} px; 1 worker each; {os.cpu_count()} CPUs")
    rates = dict.fromkeys(loaders, 0.0)
    for _ in range(_REPEATS.value):  # round robin, so that load changes hit every loader
      for name, fn in loaders.items():
        rates[name] = max(rates[name], fn(paths))
  ours = rates["zsbir_jax (grain, PIL warp)"]
  print(f"{'loader':36s} {'images/s/worker':>16s} {'zsbir_jax speed-up':>19s}")
  for name, rate in rates.items():
    print(f"{name:36s} {rate:16.1f} {ours / rate:18.2f}x")


if __name__ == "__main__":
  app.run(main)
