"""Tests for image decoding to RGB uint8."""
import io
import os

import numpy as np
from PIL import Image
import pytest

from zsbir_jax.data import images


def _save(tmp_path, name, image, **kwargs):
  path = os.path.join(tmp_path, name)
  image.save(path, **kwargs)
  return path


def test_rgb_png_roundtrip_exact(tmp_path):
  pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  out = images.load_rgb(_save(tmp_path, "a.png", Image.fromarray(pixels)))
  assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
  np.testing.assert_array_equal(out, pixels)


def test_grayscale_and_bilevel_become_three_equal_channels(tmp_path):
  gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
  out = images.load_rgb(_save(tmp_path, "g.png", Image.fromarray(gray, mode="L")))
  np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=-1))
  bits = np.zeros((4, 4), bool)
  bits[1:3, 1:3] = True
  out = images.load_rgb(_save(tmp_path, "b.png", Image.fromarray(bits)))
  np.testing.assert_array_equal(out[..., 0], np.where(bits, 255, 0))
  assert (out == out[..., :1]).all()


def test_sixteen_bit_grayscale_is_rescaled_not_clipped(tmp_path):
  values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
  image = Image.fromarray(values)
  assert image.mode.startswith("I;16")
  out = images.load_rgb(_save(tmp_path, "g16.png", image))
  np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


def test_palette_with_and_without_transparency(tmp_path):
  indices = np.array([[0, 1], [2, 0]], dtype=np.uint8)
  palette = [255, 0, 0, 0, 255, 0, 0, 0, 0] + [0] * (256 * 3 - 9)
  image = Image.fromarray(indices, mode="P")
  image.putpalette(palette)
  out = images.load_rgb(_save(tmp_path, "p.png", image))
  np.testing.assert_array_equal(out, [[[255, 0, 0], [0, 255, 0]], [[0, 0, 0], [255, 0, 0]]])
  # Index 2 (black) transparent: a sketch's background must come out white.
  out = images.load_rgb(_save(tmp_path, "pt.png", image, transparency=2))
  np.testing.assert_array_equal(out, [[[255, 0, 0], [0, 255, 0]], [[255, 255, 255], [255, 0, 0]]])


def test_alpha_is_composited_on_white(tmp_path):
  rgba = np.zeros((2, 3, 4), dtype=np.uint8)  # transparent black, as many sketch PNGs store it
  rgba[0, 0] = [0, 0, 0, 255]  # opaque ink
  rgba[0, 1] = [255, 0, 0, 128]  # half-transparent red
  out = images.load_rgb(_save(tmp_path, "a.png", Image.fromarray(rgba, mode="RGBA")))
  alpha = rgba[..., 3:].astype(np.float64) / 255
  want = rgba[..., :3] * alpha + 255 * (1 - alpha)  # independent reference: "over" on white
  np.testing.assert_allclose(out, want, atol=1)
  assert (out[1] == 255).all() and (out[0, 0] == 0).all()
  la = np.stack([np.full((2, 2), 0, np.uint8), np.array([[255, 0], [0, 64]], np.uint8)], -1)
  out = images.load_rgb(_save(tmp_path, "la.png", Image.fromarray(la, mode="LA")))
  np.testing.assert_allclose(out[..., 0], [[0, 255], [255, 191]], atol=1)


def test_cmyk(tmp_path):
  cmyk = Image.new("CMYK", (4, 2), (0, 255, 255, 0))  # pure red
  cmyk.paste((0, 0, 0, 255), (2, 0, 4, 2))  # black
  out = images.load_rgb(_save(tmp_path, "c.tif", cmyk))
  np.testing.assert_array_equal(out[:, :2], np.broadcast_to([255, 0, 0], (2, 2, 3)))
  np.testing.assert_array_equal(out[:, 2:], 0)
  out = images.load_rgb(_save(tmp_path, "c.jpg", cmyk, quality=95))
  assert out.shape == (2, 4, 3)
  np.testing.assert_allclose(out[:, 0], [[255, 0, 0]] * 2, atol=40)


def test_uppercase_jpeg_extension(tmp_path):
  pixels = np.full((8, 8, 3), (10, 200, 30), dtype=np.uint8)
  out = images.load_rgb(_save(tmp_path, "n123_4.JPEG", Image.fromarray(pixels), format="JPEG",
                              quality=95))
  np.testing.assert_allclose(out, pixels, atol=6)


def test_missing_file_names_path(tmp_path):
  path = os.path.join(tmp_path, "no such dir", "x.png")
  with pytest.raises(images.BadImageError, match="no such dir/x.png") as e:
    images.load_rgb(path)
  assert e.value.path == path and isinstance(e.value, OSError)


@pytest.mark.parametrize("payload", ["garbage", "truncated_jpeg", "truncated_png", "empty"])
def test_undecodable_file_names_path(tmp_path, payload):
  pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
  buffers = {}
  for fmt in ("JPEG", "PNG"):
    b = io.BytesIO()
    Image.fromarray(pixels).save(b, format=fmt)
    buffers[fmt] = b.getvalue()
  data = {"garbage": b"not an image at all", "truncated_jpeg": buffers["JPEG"][:600],
          "truncated_png": buffers["PNG"][:2000], "empty": b""}[payload]
  path = os.path.join(tmp_path, f"{payload}.jpg")
  with open(path, "wb") as f:
    f.write(data)
  with pytest.raises(images.BadImageError, match=f"{payload}.jpg"):
    images.load_rgb(path)
  with pytest.raises(images.BadImageError, match="from-archive"):
    images.decode_rgb(data, "from-archive")


def test_max_pixels_refuses_from_the_header():
  buffer = io.BytesIO()
  Image.new("RGB", (30, 20), (9, 9, 9)).save(buffer, format="PNG")
  assert images.decode_rgb(buffer.getvalue(), "x", max_pixels=600).shape == (20, 30, 3)
  with pytest.raises(images.BadImageError, match="'big': 30 x 20 pixels, more than the 599"):
    images.decode_rgb(buffer.getvalue(), "big", max_pixels=599)
