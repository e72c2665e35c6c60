"""Shape programs of the synthetic benchmark: the class definitions both renderers draw.

A class is a seeded program: a body primitive and 1-3 attached primitives (ellipses, polygons,
stars, boxes, arcs, curves, spirals, zigzags, stroke bundles) in a class-specific layout, each
part with a class-specific colour and texture. An instance applies per-part jitter (a small
random affine per part) and a global affine transform (rotation, scale, shear, shift).
Coordinates are class units: a class fits in radius 1.
"""
import colorsys
import dataclasses
import math

import numpy as np

CLOSED_KINDS = ("ellipse", "polygon", "star", "box")
OPEN_KINDS = ("arc", "curve", "spiral", "zigzag", "strokes")
NUM_TEXTURES = 5
# Class coordinates map to pixels as (p * VIEW + 0.5) * canvas: a class fits in radius 1, so
# with the instance transforms below the object stays inside the frame.
VIEW = 0.4


@dataclasses.dataclass(frozen=True)
class Part:
  """One primitive of a shape program, in class coordinates (radius ~1).

  paths: polylines (N, 2); closed: whether they are outlines of a fillable region.
  colour: RGB in [0, 1]; texture, frequency, angle, contrast: its photo texture;
  band: width of an open part drawn as a band in photos.
  """
  kind: str
  paths: tuple[np.ndarray, ...]
  closed: bool
  colour: tuple[float, float, float]
  texture: int
  frequency: float
  angle: float
  contrast: float
  band: float


@dataclasses.dataclass(frozen=True)
class ShapeProgram:
  """A class: its parts, the first being the body."""
  parts: tuple[Part, ...]


def rotation(theta: float) -> np.ndarray:
  c, s = math.cos(theta), math.sin(theta)
  return np.array([[c, -s], [s, c]])


def primitive(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
  """Unit-size polylines of a primitive of `kind`, centred at the origin."""
  if kind == "ellipse":
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    return (np.stack([np.cos(t), rng.uniform(0.35, 1.0) * np.sin(t)], -1),)
  if kind == "polygon":
    n = int(rng.integers(3, 8))
    t = 2 * np.pi * (np.arange(n) + rng.uniform(-0.25, 0.25, n)) / n
    r = rng.uniform(0.7, 1.0, n)
    return (np.stack([r * np.cos(t), r * np.sin(t)], -1),)
  if kind == "star":
    n = int(rng.integers(4, 9))
    t = np.pi * np.arange(2 * n) / n
    r = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.3, 0.6))
    return (np.stack([r * np.cos(t), r * np.sin(t)], -1),)
  if kind == "box":
    h = rng.uniform(0.3, 1.0)
    return (np.array([[-1, -h], [1, -h], [1, h], [-1, h]], dtype=np.float64),)
  if kind == "arc":
    start, sweep = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.5) * np.pi
    t = start + np.linspace(0, sweep, 40)
    return (np.stack([np.cos(t), np.sin(t)], -1),)
  if kind == "curve":
    control = rng.uniform(-1, 1, (4, 2))
    t = np.linspace(0, 1, 40)[:, None]
    bezier = ((1 - t) ** 3 * control[0] + 3 * (1 - t) ** 2 * t * control[1]
              + 3 * (1 - t) * t ** 2 * control[2] + t ** 3 * control[3])
    return (bezier,)
  if kind == "spiral":
    turns = rng.uniform(1.2, 2.4)
    t = np.linspace(0, 1, 80)
    a = 2 * np.pi * turns * t * rng.choice([-1, 1])
    r = 0.15 + 0.85 * t
    return (np.stack([r * np.cos(a), r * np.sin(a)], -1),)
  if kind == "zigzag":
    k = int(rng.integers(3, 7))
    x = np.linspace(-1, 1, 2 * k + 1)
    y = rng.uniform(0.25, 0.6) * np.where(np.arange(2 * k + 1) % 2 == 0, -1.0, 1.0)
    return (np.stack([x, y], -1),)
  if kind == "strokes":
    n = int(rng.integers(2, 4))
    spread = rng.uniform(0.3, 0.7)
    bend = rng.uniform(-0.3, 0.3)
    x = np.linspace(-1, 1, 12)
    return tuple(np.stack([x, o + bend * (1 - x ** 2)], -1)
                 for o in np.linspace(-spread, spread, n))
  raise ValueError(f"unknown primitive kind {kind!r}")


def _random_part(kind: str, centre: np.ndarray, size: float,
                 rng: np.random.Generator) -> Part:
  """A primitive of `kind` placed at `centre` with `size`, a random rotation and appearance."""
  placement = size * rotation(rng.uniform(0, 2 * np.pi))
  paths = tuple(p @ placement.T + centre for p in primitive(kind, rng))
  colour = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.45, 1.0), rng.uniform(0.45, 0.95))
  return Part(kind=kind, paths=paths, closed=kind in CLOSED_KINDS, colour=colour,
              texture=int(rng.integers(NUM_TEXTURES)), frequency=rng.uniform(3, 9),
              angle=rng.uniform(0, np.pi), contrast=rng.uniform(0.15, 0.4),
              band=rng.uniform(0.08, 0.15))


def class_program(seed: int, class_id: int) -> ShapeProgram:
  """The shape program of class `class_id`: a body and 1-3 attachments, fit in radius 1."""
  rng = np.random.default_rng([seed, 0, class_id])
  body_kind = rng.choice(CLOSED_KINDS + OPEN_KINDS, p=[0.16] * 4 + [0.072] * 5)
  body_size = rng.uniform(0.5, 0.8)
  parts = [_random_part(str(body_kind), np.zeros(2), body_size, rng)]
  for _ in range(int(rng.integers(1, 4))):
    direction = rng.uniform(0, 2 * np.pi)
    centre = body_size * rng.uniform(0.5, 1.3) * np.array([math.cos(direction),
                                                           math.sin(direction)])
    kind = str(rng.choice(CLOSED_KINDS + OPEN_KINDS))
    parts.append(_random_part(kind, centre, rng.uniform(0.2, 0.5), rng))
  points = np.concatenate([p for part in parts for p in part.paths])
  centre = (points.min(0) + points.max(0)) / 2
  scale = 1.0 / np.max(np.linalg.norm(points - centre, axis=1))
  return ShapeProgram(tuple(
      dataclasses.replace(part, paths=tuple((p - centre) * scale for p in part.paths))
      for part in parts))


def instance(program: ShapeProgram,
              rng: np.random.Generator) -> list[tuple[Part, tuple[np.ndarray, ...]]]:
  """The parts of one instance with their jittered, globally transformed paths."""
  scale = rng.uniform(0.75, 1.05)
  aspect = rng.uniform(0.88, 1.12)
  shear = np.array([[1.0, rng.uniform(-0.12, 0.12)], [0.0, 1.0]])
  glob = scale * rotation(rng.uniform(-0.35, 0.35)) @ np.diag([aspect, 1 / aspect]) @ shear
  shift = rng.uniform(-0.08, 0.08, 2)
  out = []
  for part in program.parts:
    points = np.concatenate(part.paths)
    pivot = points.mean(0)
    local = rng.uniform(0.9, 1.1) * rotation(rng.normal(0, 0.1)) + rng.normal(0, 0.04, (2, 2))
    move = rng.normal(0, 0.035, 2)
    out.append((part, tuple(((p - pivot) @ local.T + pivot + move) @ glob.T + shift
                            for p in part.paths)))
  return out


def to_pixels(points: np.ndarray, canvas: int) -> list[tuple[float, float]]:
  return [tuple(q) for q in ((points * VIEW + 0.5) * canvas).tolist()]


def resample(path: np.ndarray, closed: bool, step: float) -> np.ndarray:
  """Points every `step` (class units) along the polyline, the closing segment included."""
  if closed:
    path = np.concatenate([path, path[:1]])
  lengths = np.linalg.norm(np.diff(path, axis=0), axis=1)
  arc = np.concatenate([[0.0], np.cumsum(lengths)])
  s = np.linspace(0, arc[-1], max(int(arc[-1] / step), 2) + 1)
  return np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], -1)
