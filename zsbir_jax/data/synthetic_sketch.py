"""The synthetic benchmark's sketch renderer: an instance's outlines as wobbly black strokes.

Drawn supersampled with PIL and downsized for antialiasing: variable-width strokes on white,
in pieces, with occasionally a part left out or a stray stroke added; no fill.
"""
import numpy as np
from PIL import Image
from PIL import ImageDraw

from zsbir_jax.data import synthetic_shapes as shapes

_SKETCH_SUPERSAMPLE = 4


def _wobble(points: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
  """Hand-drawn tremor: a smooth random displacement along the stroke plus small jitter."""
  t = np.linspace(0, 1, len(points))[:, None]
  freq = rng.uniform(1, 5, (1, 2, 2))
  phase = rng.uniform(0, 2 * np.pi, (1, 2, 2))
  smooth = np.sin(2 * np.pi * freq * t[..., None] + phase).sum(-1)
  return points + amplitude * smooth / 2 + rng.normal(0, amplitude / 6, points.shape)


def render_sketch(program: shapes.ShapeProgram, rng: np.random.Generator, size: int) -> Image.Image:
  """A grayscale (mode "L") sketch of one shapes.instance: wobbly outlines, black on white."""
  canvas = size * _SKETCH_SUPERSAMPLE
  image = Image.new("L", (canvas, canvas), 255)
  draw = ImageDraw.Draw(image)
  ink = int(rng.integers(0, 50))
  width_scale = canvas / 64
  parts = shapes.instance(program, rng)
  dropped = rng.uniform(size=len(parts)) < 0.08
  dropped[0] = False  # the body is always drawn
  amplitude = rng.uniform(0.008, 0.025)
  for (part, paths), drop in zip(parts, dropped):
    if drop:
      continue
    for path in paths:
      if part.closed:
        # Start anywhere on the outline; overshoot or fall short of closing it.
        path = np.roll(path, int(rng.integers(len(path))), axis=0)
      points = shapes.resample(path, part.closed, 0.02)
      if part.closed:
        end = len(points) + int(len(points) * rng.uniform(-0.05, 0.1))
        points = np.concatenate([points, points[1:]])[:max(end, 2)]
      points = _wobble(points, amplitude, rng)
      # Lift the pen 0-2 times: cut the stroke at distinct interior points.
      num_cuts = max(min(int(rng.integers(0, 3)), len(points) - 3), 0)
      cuts = np.sort(rng.choice(np.arange(2, len(points) - 1), num_cuts, replace=False))
      for piece in np.split(points, cuts):
        if len(piece) < 2:
          continue
        piece = piece + rng.normal(0, 0.006, 2)
        width = max(1, round(rng.uniform(0.9, 2.3) * width_scale))
        draw.line(shapes.to_pixels(piece, canvas), fill=ink, width=width, joint="curve")
  for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
    stray = _wobble(shapes.resample(shapes.primitive("curve", rng)[0] * rng.uniform(0.1, 0.3)
                              + rng.uniform(-0.9, 0.9, 2), False, 0.02), amplitude, rng)
    draw.line(shapes.to_pixels(stray, canvas), fill=ink,
              width=max(1, round(rng.uniform(0.8, 1.6) * width_scale)), joint="curve")
  return image.resize((size, size), Image.Resampling.LANCZOS)
