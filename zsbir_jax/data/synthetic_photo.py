"""The synthetic benchmark's photo renderer: an instance filled with texture, in clutter.

The parts filled with textured, shaded colour (open parts as thick bands) on a cluttered
background of the same primitive vocabulary, with occluders and sensor noise, no outlines;
drawn supersampled with PIL and downsized for antialiasing.
"""
import colorsys
import math

import numpy as np
from PIL import Image
from PIL import ImageDraw

from zsbir_jax.data import synthetic_shapes as shapes

_PHOTO_SUPERSAMPLE = 2


class _PhotoCanvas:
  """A float RGB canvas (H, W, 3) in [0, 1] onto which textured shapes are composited."""

  def __init__(self, canvas: int, rng: np.random.Generator):
    self.size = canvas
    self.rng = rng
    axis = ((np.arange(canvas) + 0.5) / canvas - 0.5).astype(np.float32)
    self.x, self.y = np.meshgrid(axis, axis)
    self.pixels = np.zeros((canvas, canvas, 3), np.float32)

  def paint(self, mask: Image.Image, colour, kind: int, frequency: float, angle: float,
            contrast: float, light: tuple[float, float] = (0.0, 0.0), opacity: float = 1.0):
    """Composites `colour` modulated by a texture pattern and a linear light gradient.

    Only the bounding box of `mask` (mode "L", canvas-sized) is computed.
    """
    box = mask.getbbox()
    if box is None:
      return
    rows, cols = slice(box[1], box[3]), slice(box[0], box[2])
    x, y = self.x[rows, cols], self.y[rows, cols]
    u = x * math.cos(angle) + y * math.sin(angle)
    v = y * math.cos(angle) - x * math.sin(angle)
    phase = self.rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * frequency
    if kind == 0:  # flat
      pattern = 0.0
    elif kind == 1:  # stripes
      pattern = np.sin(w * u + phase)
    elif kind == 2:  # checks
      pattern = np.sign(np.sin(w * u + phase) * np.sin(w * v))
    elif kind == 3:  # dots
      pattern = np.clip(2 * np.sin(w * u + phase) * np.sin(w * v) - 0.5, -1, 1)
    else:  # blotches: a smooth random field
      field = Image.fromarray(self.rng.uniform(0, 255, (6, 6)).astype(np.uint8))
      field = field.resize((self.size, self.size), Image.Resampling.BICUBIC)
      pattern = np.asarray(field, np.float32)[rows, cols] / 127.5 - 1
    shade = 1 + light[0] * x + light[1] * y + contrast * pattern
    texture = np.clip(np.asarray(colour, np.float32) * shade[..., None], 0, 1)
    alpha = np.asarray(mask.crop(box), np.float32)[..., None] * np.float32(opacity / 255)
    target = self.pixels[rows, cols]
    target += alpha * (texture - target)


def _region_mask(paths: tuple[np.ndarray, ...], closed: bool, band: float,
                 canvas: int) -> Image.Image:
  """Mask (mode "L") of a filled closed part, or of an open part drawn as a band."""
  mask = Image.new("L", (canvas, canvas), 0)
  draw = ImageDraw.Draw(mask)
  for path in paths:
    if closed:
      draw.polygon(shapes.to_pixels(path, canvas), fill=255)
    else:
      draw.line(shapes.to_pixels(path, canvas), fill=255,
                width=max(1, round(band * shapes.VIEW * canvas)), joint="curve")
  return mask


def _random_shape(rng: np.random.Generator, radius: float, size: tuple[float, float],
                  canvas: int) -> Image.Image:
  """Mask of a random shapes.primitive (clutter or occluder) within `radius` of the centre."""
  kind = str(rng.choice(shapes.CLOSED_KINDS + shapes.OPEN_KINDS))
  centre = rng.uniform(-radius, radius, 2)
  placement = rng.uniform(*size) * shapes.rotation(rng.uniform(0, 2 * np.pi))
  paths = tuple(p @ placement.T + centre for p in shapes.primitive(kind, rng))
  return _region_mask(paths, kind in shapes.CLOSED_KINDS, rng.uniform(0.05, 0.12), canvas)


def _random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
  return colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 1.0))


def render_photo(program: shapes.ShapeProgram, rng: np.random.Generator, size: int) -> Image.Image:
  """An RGB photo of one shapes.instance: textured parts on clutter, with occluders and noise."""
  canvas = size * _PHOTO_SUPERSAMPLE
  photo = _PhotoCanvas(canvas, rng)
  # Background: a two-colour gradient with a smooth random field, then clutter shapes.
  a, b = _random_colour(rng), _random_colour(rng)
  direction = rng.uniform(0, 2 * np.pi)
  g = (photo.x * math.cos(direction) + photo.y * math.sin(direction) + 0.5)[..., None]
  photo.pixels[:] = (1 - g) * np.asarray(a, np.float32) + g * np.asarray(b, np.float32)
  photo.paint(Image.new("L", (canvas, canvas), 255), _random_colour(rng), 4, 0, 0, 0.8,
              opacity=rng.uniform(0.2, 0.5))
  for _ in range(int(rng.integers(5, 11))):
    photo.paint(_random_shape(rng, 1.2, (0.08, 0.35), canvas), _random_colour(rng),
                int(rng.integers(shapes.NUM_TEXTURES)), rng.uniform(3, 9), rng.uniform(0, np.pi),
                rng.uniform(0.1, 0.4), opacity=rng.uniform(0.4, 0.9))
  # The object: each part in its jittered class colour and texture under one light.
  light = tuple(rng.uniform(-0.5, 0.5, 2))
  for part, paths in shapes.instance(program, rng):
    hsv = np.array(colorsys.rgb_to_hsv(*part.colour)) + rng.normal(0, [0.02, 0.06, 0.06])
    colour = colorsys.hsv_to_rgb(hsv[0] % 1, *np.clip(hsv[1:], 0, 1))
    photo.paint(_region_mask(paths, part.closed, part.band, canvas), colour, part.texture,
                part.frequency * rng.uniform(0.85, 1.15), part.angle + rng.normal(0, 0.1),
                part.contrast, light)
  for _ in range(int(rng.random() < 0.4)):
    photo.paint(_random_shape(rng, 0.7, (0.12, 0.3), canvas), _random_colour(rng),
                int(rng.integers(shapes.NUM_TEXTURES)), rng.uniform(3, 9), rng.uniform(0, np.pi),
                rng.uniform(0.1, 0.4))
  image = Image.fromarray(np.rint(photo.pixels * 255).astype(np.uint8), mode="RGB")
  small = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), np.float32)
  small = small * rng.uniform(0.8, 1.15) + rng.normal(0, rng.uniform(2, 8), small.shape)
  return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), mode="RGB")
