"""SAKE's random affine augmentation, resizing and the backbone's normalisation as one PIL warp.

SAKE (Liu et al., ICCV 2019) augments training images with, each with probability 0.5, a
horizontal flip, independent x/y scales in [0.7, 1.3], a rotation in [-30, 30] degrees and x/y
translations in [-10, 10] px (skimage `AffineTransform` + `warp`, applied to the image at its
stored size, here with probability 0.7 as a whole), then resizes to 224 x 224 and normalises
with ImageNet mean/std; here the normalisation is the backbone's (`AugmentConfig.input_mean`,
`input_std`: ImageNet's for a ResNet, (x - 127) / 128 for EfficientNet-Lite). Here flip, affine
map and resize are composed into one 3 x 3 matrix from output to source coordinates and applied
by a single bilinear `Image.transform`, which is both faster and one interpolation instead of
two. Items left unaugmented are resized with PIL's
antialiased bilinear `resize`, exactly as torchvision's `Resize` (SAKE's evaluation transform).

Differences from SAKE, by choice: rotation and scaling act about the image centre
(`about_center=True`); skimage's `AffineTransform` acts about the top-left pixel, which at 30
degrees and scale 1.3 pushes much of the object out of the frame (`about_center=False`
reproduces it). Areas uncovered by the warp are white for sketches (their background) and the
input mean colour for photos (zero after normalisation; SAKE fills black). The warp's
resize is bilinear without antialiasing; sources more than 2x larger than the output are first
box-reduced by an integer factor, so that large photos do not alias.

Coordinates are continuous pixel coordinates, pixel (i, j) covering [j, j+1) x [i, i+1), which
is PIL's convention; a box (x0, y0, w, h) is a rectangle in them.
"""
import dataclasses
import math
from typing import NamedTuple

import numpy as np
from PIL import Image

from zsbir_jax import domains

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The same in pixel units 0..255, the unit of `AugmentConfig.input_mean` / `input_std`.
IMAGENET_PIXEL_MEAN = tuple(255 * m for m in IMAGENET_MEAN)
IMAGENET_PIXEL_STD = tuple(255 * s for s in IMAGENET_STD)
SKETCH_FILL = (255, 255, 255)
# A sketch pixel is ink when its darkest channel is below this value; the ink box is enlarged
# to a square with this relative margin on every side.
INK_THRESHOLD = 200
INK_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation and input geometry; the defaults are SAKE's (see the module docstring).

  Attributes:
    size: output height and width in pixels.
    apply_prob: probability that an item is augmented at all.
    flip_prob, scale_prob, rotate_prob, translate_prob: probability of each component.
    scale_range: range of the independent x and y scales.
    max_rotation_deg: rotations are uniform in [-max, max] degrees.
    max_translation_px: x and y translations are uniform in [-max, max] source pixels.
    about_center: rotate and scale about the image centre (True) or, as skimage and SAKE, about
      the top-left pixel (False).
    crop_sketch_to_ink: frame sketches by the square around their ink instead of the whole
      canvas (in training and evaluation alike).
    input_mean, input_std: the network input is (x - input_mean) / input_std per RGB channel, x
      in pixel units 0..255: the backbone's (`backbones.INPUT_NORMALIZATION`, recorded in a
      pretrained-backbone directory and a training run's model.json).
  """
  size: int = 224
  apply_prob: float = 0.7
  flip_prob: float = 0.5
  scale_prob: float = 0.5
  scale_range: tuple[float, float] = (0.7, 1.3)
  rotate_prob: float = 0.5
  max_rotation_deg: float = 30.0
  translate_prob: float = 0.5
  max_translation_px: float = 10.0
  about_center: bool = True
  crop_sketch_to_ink: bool = False
  input_mean: tuple[float, float, float] = IMAGENET_PIXEL_MEAN
  input_std: tuple[float, float, float] = IMAGENET_PIXEL_STD

  @property
  def photo_fill(self) -> tuple[int, int, int]:
    """The colour of photo areas uncovered by the warp: the input mean, ~0 once normalised."""
    return tuple(round(m) for m in self.input_mean)


class AffineParams(NamedTuple):
  """One draw of the augmentation: flip, then the affine map x -> A (x - pivot) + pivot + t."""
  flip: bool
  scale_x: float
  scale_y: float
  rotation: float  # radians
  translate_x: float
  translate_y: float


IDENTITY = AffineParams(False, 1.0, 1.0, 0.0, 0.0, 0.0)


def item_rng(seed: int, step: int, position: int) -> np.random.Generator:
  """The augmentation generator of the item at `position` of global batch `step`.

  Keyed by position in the global batch, not by worker or host, so an item's augmentation is
  the same for any worker count and any number of processes.
  """
  return np.random.default_rng((seed, 1, step, position))


def sample_params(rng: np.random.Generator, config: AugmentConfig) -> AffineParams:
  """Draws SAKE's augmentation: each component with its probability, all with apply_prob."""
  coins = rng.random(5)
  scale = rng.uniform(*config.scale_range, size=2)
  rotation = math.radians(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
  shift = rng.uniform(-config.max_translation_px, config.max_translation_px, size=2)
  if coins[0] >= config.apply_prob:
    return IDENTITY
  scaled, rotated, shifted = (coins[2] < config.scale_prob, coins[3] < config.rotate_prob,
                              coins[4] < config.translate_prob)
  return AffineParams(
      flip=bool(coins[1] < config.flip_prob),
      scale_x=float(scale[0]) if scaled else 1.0,
      scale_y=float(scale[1]) if scaled else 1.0,
      rotation=rotation if rotated else 0.0,
      translate_x=float(shift[0]) if shifted else 0.0,
      translate_y=float(shift[1]) if shifted else 0.0)


def transform_matrix(params: AffineParams, box: tuple[float, float, float, float],
                     out_size: int, about_center: bool) -> np.ndarray:
  """(3, 3) map from output to source coordinates: resize `box` to out_size, flip, warp.

  In the frame of the box (the image SAKE would augment), the augmented image at p is the
  flipped image at T^-1(p), T(x) = A (x - pivot) + pivot + t with skimage's
  A = [[sx cos r, -sy sin r], [sx sin r, sy cos r]]; the pivot is the box centre or, for
  about_center=False, the centre of its top-left pixel.
  """
  x0, y0, w, h = box
  pivot = np.array([w / 2, h / 2] if about_center else [0.5, 0.5])
  c, s = math.cos(params.rotation), math.sin(params.rotation)
  a = np.array([[params.scale_x * c, -params.scale_y * s],
                [params.scale_x * s, params.scale_y * c]])
  forward = np.eye(3)
  forward[:2, :2] = a
  forward[:2, 2] = pivot - a @ pivot + (params.translate_x, params.translate_y)
  flip = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if params.flip else np.eye(3)
  offset = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
  resize = np.diag([w / out_size, h / out_size, 1.0])
  return offset @ flip @ np.linalg.inv(forward) @ resize


def warp(image: np.ndarray, matrix: np.ndarray, out_size: int,
         fill: tuple[int, int, int]) -> np.ndarray:
  """Samples uint8 (H, W, 3) `image` bilinearly at matrix @ (output coords): (S, S, 3) uint8.

  Where the matrix shrinks by 2x or more in both directions, the image is first box-reduced by
  the integer factor, so bilinear sampling does not alias.
  """
  pil = Image.fromarray(image)
  factor = int(np.linalg.svd(matrix[:2, :2], compute_uv=False)[-1])
  if factor >= 2:
    pil = pil.reduce(factor)
    matrix = np.diag([1.0 / factor, 1.0 / factor, 1.0]) @ matrix
  out = pil.transform((out_size, out_size), Image.Transform.AFFINE, tuple(matrix[:2].ravel()),
                      Image.Resampling.BILINEAR, fillcolor=fill)
  return np.asarray(out)


def normalize(image: np.ndarray, mean: tuple[float, float, float] = IMAGENET_PIXEL_MEAN,
              std: tuple[float, float, float] = IMAGENET_PIXEL_STD) -> np.ndarray:
  """uint8 (..., W, 3) RGB -> float32 (..., W, 3) (x - mean) / std, mean/std in pixel units.

  Works on rows of W * 3 values with the per-channel constants tiled along them, which is
  about 9x faster than broadcasting over a trailing axis of length 3.
  """
  scale = 1.0 / np.asarray(std, np.float32)
  bias = np.asarray(mean, np.float32) * scale
  width = image.shape[-2]
  out = np.empty(image.shape, np.float32)
  rows = out.reshape(-1, width * 3)
  np.multiply(image.reshape(-1, width * 3), np.tile(scale, width), out=rows)
  rows -= np.tile(bias, width)
  return out


def ink_box(image: np.ndarray) -> tuple[float, float, float, float]:
  """The square box (x0, y0, w, h) around a sketch's ink with INK_MARGIN; the canvas if blank."""
  ink = image.min(axis=2) < INK_THRESHOLD
  rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
  if not len(rows):
    return 0.0, 0.0, float(image.shape[1]), float(image.shape[0])
  side = max(cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]) * (1 + 2 * INK_MARGIN)
  cx, cy = (cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2
  return cx - side / 2, cy - side / 2, side, side


def preprocess(image: np.ndarray, domain: int, config: AugmentConfig,
               params: AffineParams = IDENTITY) -> np.ndarray:
  """uint8 (H, W, 3) -> float32 (size, size, 3) network input: frame, augment, resize, normalise.

  `params=IDENTITY` (evaluation, and training items left unaugmented) only frames and resizes;
  without ink framing that is a plain resize, as torchvision's `Resize` in SAKE's evaluation.
  """
  sketch = domain == domains.SKETCH
  size = config.size
  if params == IDENTITY and not (sketch and config.crop_sketch_to_ink):
    # A plain resize: PIL's antialiased bilinear, exactly torchvision's Resize, and faster.
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return normalize(np.asarray(resized), config.input_mean, config.input_std)
  if sketch and config.crop_sketch_to_ink:
    box = ink_box(image)
  else:
    box = (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))
  matrix = transform_matrix(params, box, size, config.about_center)
  fill = SKETCH_FILL if sketch else config.photo_fill
  return normalize(warp(image, matrix, size, fill), config.input_mean, config.input_std)
