"""Augmentation: the composed matrix against SAKE's step-by-step maps, the PIL warp against
PyTorch's grid_sample, fills, normalisation against torchvision, ink framing, determinism."""
import math

import numpy as np
from PIL import Image
import pytest
import torch
import torchvision.transforms.functional as tvf

from zsbir_jax import domains
from zsbir_jax.data import augment


def _skimage_forward(params: augment.AffineParams) -> np.ndarray:
  """skimage.transform.AffineTransform(scale, rotation, translation).params, written out."""
  c, s = math.cos(params.rotation), math.sin(params.rotation)
  return np.array([[params.scale_x * c, -params.scale_y * s, params.translate_x],
                   [params.scale_x * s, params.scale_y * c, params.translate_y],
                   [0.0, 0.0, 1.0]])


def _reference_source(params, width, height, out_size, u, v, about_center):
  """SAKE's steps in pixel-index coordinates (centres at integers) for output pixel (u, v):
  resize (align-corners-false) -> inverse warp (skimage, origin at pixel 0 or the centre)
  -> flip. Returns continuous coordinates (index + 0.5)."""
  x = (u + 0.5) * width / out_size - 0.5
  y = (v + 0.5) * height / out_size - 0.5
  pivot = np.array([(width - 1) / 2, (height - 1) / 2]) if about_center else np.zeros(2)
  src = np.linalg.solve(_skimage_forward(params)[:2, :2],
                        np.stack([x, y]) - pivot[:, None] - np.array(
                            [[params.translate_x], [params.translate_y]])) + pivot[:, None]
  if params.flip:
    src[0] = width - 1 - src[0]
  return src + 0.5


@pytest.mark.parametrize("about_center", [True, False])
def test_matrix_composes_sakes_resize_warp_and_flip(about_center):
  rng = np.random.default_rng(0)
  config = augment.AugmentConfig(apply_prob=1.0, flip_prob=0.5)
  u, v = rng.uniform(0, 24, size=(2, 50))
  for _ in range(10):
    params = augment.sample_params(rng, config)
    matrix = augment.transform_matrix(params, (0.0, 0.0, 40.0, 30.0), 24, about_center)
    ours = matrix @ np.stack([u + 0.5, v + 0.5, np.ones_like(u)])
    np.testing.assert_allclose(
        ours[:2], _reference_source(params, 40, 30, 24, u, v, about_center), atol=1e-9)


def test_warp_matches_torch_grid_sample():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
  config = augment.AugmentConfig(apply_prob=1.0)
  for seed in range(4):
    params = augment.sample_params(np.random.default_rng(seed), config)
    matrix = augment.transform_matrix(params, (0.0, 0.0, 40.0, 30.0), 24, seed % 2 == 0)
    ours = augment.warp(image, matrix, 24, (0, 0, 0)).astype(np.float64)
    centres = np.arange(24) + 0.5
    uu, vv = np.meshgrid(centres, centres)
    src = np.einsum("ij,jhw->ihw", matrix, np.stack([uu, vv, np.ones_like(uu)]))
    grid = np.stack([2 * src[0] / 40 - 1, 2 * src[1] / 30 - 1], axis=-1)
    ref = torch.nn.functional.grid_sample(
        torch.tensor(image.transpose(2, 0, 1)[None], dtype=torch.float64),
        torch.tensor(grid[None]), mode="bilinear", align_corners=False)[0].numpy()
    inside = (src[0] > 1) & (src[0] < 39) & (src[1] > 1) & (src[1] < 29)
    assert inside.mean() > 0.5
    assert np.abs(ours - ref.transpose(1, 2, 0))[inside].max() <= 1.0


def test_flip_rotation_and_fill_are_exact():
  image = np.random.default_rng(2).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
  box = (0.0, 0.0, 20.0, 20.0)
  flip = augment.transform_matrix(augment.IDENTITY._replace(flip=True), box, 20, True)
  np.testing.assert_array_equal(augment.warp(image, flip, 20, (0, 0, 0)), image[:, ::-1])
  quarter = augment.transform_matrix(augment.IDENTITY._replace(rotation=math.pi / 2), box, 20,
                                     True)
  rotated = augment.warp(image, quarter, 20, (0, 0, 0)).astype(int)
  assert np.abs(rotated - np.rot90(image, k=-1)).max() <= 1
  away = augment.IDENTITY._replace(translate_x=100.0)
  sketch = augment.preprocess(image, domains.SKETCH, augment.AugmentConfig(size=8), away)
  white = augment.normalize(np.full((1, 1, 3), 255, np.uint8))
  np.testing.assert_allclose(sketch, np.broadcast_to(white, sketch.shape))
  photo = augment.preprocess(image, domains.PHOTO, augment.AugmentConfig(size=8), away)
  assert np.abs(photo).max() < 0.01  # the ImageNet mean colour
  # EfficientNet-Lite's normalisation: the fill 127 is exactly zero, white (255 - 127) / 128.
  lite = augment.AugmentConfig(size=8, input_mean=(127.0,) * 3, input_std=(128.0,) * 3)
  np.testing.assert_array_equal(augment.preprocess(image, domains.PHOTO, lite, away), 0)
  np.testing.assert_array_equal(augment.preprocess(image, domains.SKETCH, lite, away), 1)


def test_normalize_matches_torchvision():
  image = np.random.default_rng(3).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
  ref = tvf.normalize(tvf.to_tensor(image), augment.IMAGENET_MEAN, augment.IMAGENET_STD)
  ours = augment.normalize(image)
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref.numpy().transpose(1, 2, 0), atol=1e-5)
  lite = augment.normalize(image, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
  np.testing.assert_allclose(lite, (image.astype(np.float64) - 127) / 128, atol=1e-6)


def test_sample_params_follow_sakes_probabilities_and_ranges():
  rng = np.random.default_rng(4)
  config = augment.AugmentConfig()
  draws = [augment.sample_params(rng, config) for _ in range(4000)]
  identity = np.mean([d == augment.IDENTITY for d in draws])
  # Identity: not applied (0.3) or applied with every coin off (0.7 / 16).
  assert abs(identity - (0.3 + 0.7 / 16)) < 0.03
  assert abs(np.mean([d.flip for d in draws]) - 0.35) < 0.03
  scales = np.array([(d.scale_x, d.scale_y) for d in draws])
  assert scales.min() >= 0.7 and scales.max() <= 1.3
  assert max(abs(d.rotation) for d in draws) <= math.radians(30)
  assert max(max(abs(d.translate_x), abs(d.translate_y)) for d in draws) <= 10
  assert abs(np.mean([d.rotation != 0 for d in draws]) - 0.35) < 0.03


def test_item_rng_is_keyed_by_seed_step_and_position():
  config = augment.AugmentConfig(apply_prob=1.0)
  a = augment.sample_params(augment.item_rng(0, 3, 5), config)
  assert a == augment.sample_params(augment.item_rng(0, 3, 5), config)
  others = [augment.sample_params(augment.item_rng(*key), config)
            for key in [(1, 3, 5), (0, 4, 5), (0, 3, 6)]]
  assert all(o != a for o in others)


def test_ink_box_and_crop_frame_the_sketch():
  canvas = np.full((100, 80, 3), 255, np.uint8)
  canvas[10:30, 50:60] = 0  # 20 rows x 10 columns of ink
  x0, y0, w, h = augment.ink_box(canvas)
  assert w == h == pytest.approx(20 * (1 + 2 * augment.INK_MARGIN))
  assert (x0 + w / 2, y0 + h / 2) == (55.0, 20.0)
  assert augment.ink_box(np.full((5, 6, 3), 255, np.uint8)) == (0.0, 0.0, 6.0, 5.0)
  config = augment.AugmentConfig(size=40, crop_sketch_to_ink=True)
  out = augment.preprocess(canvas, domains.SKETCH, config)
  ink = out[..., 0] < 0
  rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
  # The 20 x 10 ink block spans the height minus the margins and is centred.
  assert rows[0] in (1, 2) and rows[-1] in (37, 38)
  assert cols[0] + cols[-1] in (38, 39, 40)
  # Photos are never cropped.
  photo = augment.preprocess(canvas, domains.PHOTO, config)
  assert (photo[..., 0] < 0).sum() < ink.sum()


def test_large_sources_are_reduced_before_sampling():
  stripes = np.zeros((800, 800, 3), np.uint8)
  stripes[:, ::2] = 255
  shift = augment.IDENTITY._replace(translate_x=1.0)
  matrix = augment.transform_matrix(shift, (0.0, 0.0, 800.0, 800.0), 47, True)
  out = augment.normalize(augment.warp(stripes, matrix, 47, (0, 0, 0)))
  # Box-reduced (by 17), 1-px stripes average to grey (8 or 9 of 17 white); bilinear sampling
  # of the full image at a 17.02 px stride would alias to black and white (range 4.3).
  assert np.ptp(out[1:, 1:, 0]) < 0.3


def test_unaugmented_items_are_torchvisions_resize_and_normalize():
  image = np.random.default_rng(5).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
  config = augment.AugmentConfig(size=24)
  ref = tvf.normalize(tvf.to_tensor(tvf.resize(Image.fromarray(image), [24, 24])),
                      augment.IMAGENET_MEAN, augment.IMAGENET_STD).numpy().transpose(1, 2, 0)
  for domain in (domains.SKETCH, domains.PHOTO):
    out = augment.preprocess(image, domain, config)
    assert out.shape == (24, 24, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
