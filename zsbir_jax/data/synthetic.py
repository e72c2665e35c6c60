"""A procedural zero-shot sketch/photo benchmark that a 2-core CPU can train on in minutes.

A class is a seeded "shape program": a body primitive and 1-3 attached primitives (ellipses,
polygons, stars, boxes, arcs, curves, spirals, zigzags, stroke bundles) in a class-specific
layout, each part with a class-specific colour and texture. An instance applies per-part jitter
(a small random affine per part) and a global affine transform (rotation, scale, shear, shift).

* Photos (JPEG): the parts filled with textured, shaded colour (open parts as thick bands) on a
  cluttered background of the same primitive vocabulary, with occluders and sensor noise, no
  outlines.
* Sketches (PNG, grayscale): the parts' outlines as wobbly black strokes of variable width on
  white, drawn in pieces, with occasionally a part left out or a stray stroke added; no fill.

So class identity lives in the shape layout shared by both domains, while appearance (colour,
texture, clutter versus clean ink) differs: a real domain gap. `generate` writes the SAKE layout
and list files read by `lists.load_split(root, "synthetic")`, plus a disjoint photo-only
pretraining set (the stand-in for ImageNet) read by `lists.load_pretrain(root)`, and a JSON
manifest. Every image is drawn from its own seed (seed, class, domain, index), so the output is
byte-identical for a seed whatever the number of worker processes. Drawing is supersampled
with PIL and downsized for antialiasing.
"""
import colorsys
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import shutil

import numpy as np
from PIL import Image
from PIL import ImageDraw

from zsbir_jax import domains
from zsbir_jax.data import images
from zsbir_jax.data import lists

GENERATOR_VERSION = 1
SPLIT = lists.SPLITS["synthetic"]

_CLOSED_KINDS = ("ellipse", "polygon", "star", "box")
_OPEN_KINDS = ("arc", "curve", "spiral", "zigzag", "strokes")
_NUM_TEXTURES = 5
# Class coordinates map to pixels as (p * _VIEW + 0.5) * canvas: a class fits in radius 1, so
# with the instance transforms below the object stays inside the frame.
_VIEW = 0.4
_PHOTO_SUPERSAMPLE = 2
_SKETCH_SUPERSAMPLE = 4
_JPEG_QUALITY = 90


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Sizes of the generated benchmark.

  Seen classes get `sketches_per_class` train sketches, `test_sketches_per_class` held-out
  sketches and `photos_per_class` photos; unseen classes `sketches_per_class` query sketches and
  `photos_per_class` gallery photos; pretraining classes `pretrain_photos_per_class` photos, of
  which `pretrain_val_per_class` form the validation list.
  """
  seed: int = 0
  image_size: int = 64
  num_seen: int = 100
  num_unseen: int = 25
  sketches_per_class: int = 30
  test_sketches_per_class: int = 10
  photos_per_class: int = 30
  num_pretrain: int = 100
  pretrain_photos_per_class: int = 40
  pretrain_val_per_class: int = 8


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


def _rotation(theta: float) -> np.ndarray:
  c, s = math.cos(theta), math.sin(theta)
  return np.array([[c, -s], [s, c]])


def _primitive(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
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
  placement = size * _rotation(rng.uniform(0, 2 * np.pi))
  paths = tuple(p @ placement.T + centre for p in _primitive(kind, rng))
  colour = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.45, 1.0), rng.uniform(0.45, 0.95))
  return Part(kind=kind, paths=paths, closed=kind in _CLOSED_KINDS, colour=colour,
              texture=int(rng.integers(_NUM_TEXTURES)), frequency=rng.uniform(3, 9),
              angle=rng.uniform(0, np.pi), contrast=rng.uniform(0.15, 0.4),
              band=rng.uniform(0.08, 0.15))


def class_program(seed: int, class_id: int) -> ShapeProgram:
  """The shape program of class `class_id`: a body and 1-3 attachments, fit in radius 1."""
  rng = np.random.default_rng([seed, 0, class_id])
  body_kind = rng.choice(_CLOSED_KINDS + _OPEN_KINDS, p=[0.16] * 4 + [0.072] * 5)
  body_size = rng.uniform(0.5, 0.8)
  parts = [_random_part(str(body_kind), np.zeros(2), body_size, rng)]
  for _ in range(int(rng.integers(1, 4))):
    direction = rng.uniform(0, 2 * np.pi)
    centre = body_size * rng.uniform(0.5, 1.3) * np.array([math.cos(direction),
                                                           math.sin(direction)])
    kind = str(rng.choice(_CLOSED_KINDS + _OPEN_KINDS))
    parts.append(_random_part(kind, centre, rng.uniform(0.2, 0.5), rng))
  points = np.concatenate([p for part in parts for p in part.paths])
  centre = (points.min(0) + points.max(0)) / 2
  scale = 1.0 / np.max(np.linalg.norm(points - centre, axis=1))
  return ShapeProgram(tuple(
      dataclasses.replace(part, paths=tuple((p - centre) * scale for p in part.paths))
      for part in parts))


def _instance(program: ShapeProgram,
              rng: np.random.Generator) -> list[tuple[Part, tuple[np.ndarray, ...]]]:
  """The parts of one instance with their jittered, globally transformed paths."""
  scale = rng.uniform(0.75, 1.05)
  aspect = rng.uniform(0.88, 1.12)
  shear = np.array([[1.0, rng.uniform(-0.12, 0.12)], [0.0, 1.0]])
  glob = scale * _rotation(rng.uniform(-0.35, 0.35)) @ np.diag([aspect, 1 / aspect]) @ shear
  shift = rng.uniform(-0.08, 0.08, 2)
  out = []
  for part in program.parts:
    points = np.concatenate(part.paths)
    pivot = points.mean(0)
    local = rng.uniform(0.9, 1.1) * _rotation(rng.normal(0, 0.1)) + rng.normal(0, 0.04, (2, 2))
    move = rng.normal(0, 0.035, 2)
    out.append((part, tuple(((p - pivot) @ local.T + pivot + move) @ glob.T + shift
                            for p in part.paths)))
  return out


def _to_pixels(points: np.ndarray, canvas: int) -> list[tuple[float, float]]:
  return [tuple(q) for q in ((points * _VIEW + 0.5) * canvas).tolist()]


def _resample(path: np.ndarray, closed: bool, step: float) -> np.ndarray:
  """Points every `step` (class units) along the polyline, the closing segment included."""
  if closed:
    path = np.concatenate([path, path[:1]])
  lengths = np.linalg.norm(np.diff(path, axis=0), axis=1)
  arc = np.concatenate([[0.0], np.cumsum(lengths)])
  s = np.linspace(0, arc[-1], max(int(arc[-1] / step), 2) + 1)
  return np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], -1)


def _wobble(points: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
  """Hand-drawn tremor: a smooth random displacement along the stroke plus small jitter."""
  t = np.linspace(0, 1, len(points))[:, None]
  freq = rng.uniform(1, 5, (1, 2, 2))
  phase = rng.uniform(0, 2 * np.pi, (1, 2, 2))
  smooth = np.sin(2 * np.pi * freq * t[..., None] + phase).sum(-1)
  return points + amplitude * smooth / 2 + rng.normal(0, amplitude / 6, points.shape)


def render_sketch(program: ShapeProgram, rng: np.random.Generator, size: int) -> Image.Image:
  """A grayscale (mode "L") sketch of one instance: wobbly outlines, black on white."""
  canvas = size * _SKETCH_SUPERSAMPLE
  image = Image.new("L", (canvas, canvas), 255)
  draw = ImageDraw.Draw(image)
  ink = int(rng.integers(0, 50))
  width_scale = canvas / 64
  parts = _instance(program, rng)
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
      points = _resample(path, part.closed, 0.02)
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
        draw.line(_to_pixels(piece, canvas), fill=ink, width=width, joint="curve")
  for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
    stray = _wobble(_resample(_primitive("curve", rng)[0] * rng.uniform(0.1, 0.3)
                              + rng.uniform(-0.9, 0.9, 2), False, 0.02), amplitude, rng)
    draw.line(_to_pixels(stray, canvas), fill=ink,
              width=max(1, round(rng.uniform(0.8, 1.6) * width_scale)), joint="curve")
  return image.resize((size, size), Image.Resampling.LANCZOS)


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
      draw.polygon(_to_pixels(path, canvas), fill=255)
    else:
      draw.line(_to_pixels(path, canvas), fill=255,
                width=max(1, round(band * _VIEW * canvas)), joint="curve")
  return mask


def _random_shape(rng: np.random.Generator, radius: float, size: tuple[float, float],
                  canvas: int) -> Image.Image:
  """Mask of a random primitive (clutter or occluder) within `radius` of the centre."""
  kind = str(rng.choice(_CLOSED_KINDS + _OPEN_KINDS))
  centre = rng.uniform(-radius, radius, 2)
  placement = rng.uniform(*size) * _rotation(rng.uniform(0, 2 * np.pi))
  paths = tuple(p @ placement.T + centre for p in _primitive(kind, rng))
  return _region_mask(paths, kind in _CLOSED_KINDS, rng.uniform(0.05, 0.12), canvas)


def _random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
  return colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 1.0))


def render_photo(program: ShapeProgram, rng: np.random.Generator, size: int) -> Image.Image:
  """An RGB photo of one instance: textured parts on clutter, with occluders and noise."""
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
                int(rng.integers(_NUM_TEXTURES)), rng.uniform(3, 9), rng.uniform(0, np.pi),
                rng.uniform(0.1, 0.4), opacity=rng.uniform(0.4, 0.9))
  # The object: each part in its jittered class colour and texture under one light.
  light = tuple(rng.uniform(-0.5, 0.5, 2))
  for part, paths in _instance(program, rng):
    hsv = np.array(colorsys.rgb_to_hsv(*part.colour)) + rng.normal(0, [0.02, 0.06, 0.06])
    colour = colorsys.hsv_to_rgb(hsv[0] % 1, *np.clip(hsv[1:], 0, 1))
    photo.paint(_region_mask(paths, part.closed, part.band, canvas), colour, part.texture,
                part.frequency * rng.uniform(0.85, 1.15), part.angle + rng.normal(0, 0.1),
                part.contrast, light)
  for _ in range(int(rng.random() < 0.4)):
    photo.paint(_random_shape(rng, 0.7, (0.12, 0.3), canvas), _random_colour(rng),
                int(rng.integers(_NUM_TEXTURES)), rng.uniform(3, 9), rng.uniform(0, np.pi),
                rng.uniform(0.1, 0.4))
  image = Image.fromarray(np.rint(photo.pixels * 255).astype(np.uint8), mode="RGB")
  small = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), np.float32)
  small = small * rng.uniform(0.8, 1.15) + rng.normal(0, rng.uniform(2, 8), small.shape)
  return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), mode="RGB")


def class_name(class_id: int) -> str:
  """Directory and class-file name of class `class_id` (contains a space, like TU-Berlin's)."""
  return f"shape {class_id:03d}"


@dataclasses.dataclass(frozen=True)
class _ClassJob:
  """Render `num_sketches` sketches and `num_photos` photos of one class into the dirs."""
  seed: int
  class_id: int
  image_size: int
  num_sketches: int
  num_photos: int
  sketch_dir: str
  photo_dir: str


def _render_class(job: _ClassJob) -> None:
  program = class_program(job.seed, job.class_id)
  name = class_name(job.class_id)
  if job.num_sketches:
    os.makedirs(os.path.join(job.sketch_dir, name), exist_ok=True)
  if job.num_photos:
    os.makedirs(os.path.join(job.photo_dir, name), exist_ok=True)
  for i in range(job.num_sketches):
    rng = np.random.default_rng([job.seed, 1, job.class_id, domains.SKETCH, i])
    render_sketch(program, rng, job.image_size).save(
        os.path.join(job.sketch_dir, name, f"{i:04d}.png"), "PNG")
  for i in range(job.num_photos):
    rng = np.random.default_rng([job.seed, 1, job.class_id, domains.PHOTO, i])
    render_photo(program, rng, job.image_size).save(
        os.path.join(job.photo_dir, name, f"{i:04d}.jpg"), "JPEG", quality=_JPEG_QUALITY)


def _write_lines(path: str, lines: list[str]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(line + "\n" for line in lines)


def _list_lines(subdir: str, classes: list[int], indices: range, ext: str) -> list[str]:
  """SAKE list lines `<subdir>/<class>/<index>.<ext> <label>`, label = position in `classes`."""
  return [f"{subdir}/{class_name(c)}/{i:04d}.{ext} {label}"
          for label, c in enumerate(classes) for i in indices]


def generate(root: str, config: SyntheticConfig = SyntheticConfig(), workers: int = 1) -> dict:
  """Writes the benchmark to `<root>/Synthetic` and returns its manifest.

  Classes 0..num_seen-1 are seen, the next num_unseen unseen, the next num_pretrain the
  pretraining set. The tree is built in `<root>/Synthetic.partial` and renamed when complete;
  an existing `<root>/Synthetic` is replaced only if it holds a manifest (was generated).
  """
  c = config
  if c.pretrain_val_per_class >= c.pretrain_photos_per_class:
    raise ValueError(f"pretrain_val_per_class={c.pretrain_val_per_class} must be smaller than "
                     f"pretrain_photos_per_class={c.pretrain_photos_per_class}")
  final = os.path.join(root, SPLIT.dataset_dir)
  if os.path.exists(final) and not os.path.isfile(os.path.join(final, SPLIT.manifest)):
    raise FileExistsError(f"{final} exists and holds no {SPLIT.manifest}: not replacing it")
  out = final + ".partial"
  shutil.rmtree(out, ignore_errors=True)
  seen = list(range(c.num_seen))
  unseen = list(range(c.num_seen, c.num_seen + c.num_unseen))
  pretrain = list(range(c.num_seen + c.num_unseen, c.num_seen + c.num_unseen + c.num_pretrain))

  sketch_dir, photo_dir = os.path.join(out, "sketch"), os.path.join(out, "photo")
  pretrain_dir = os.path.join(out, "pretrain_photo")
  num_seen_sketches = c.sketches_per_class + c.test_sketches_per_class
  jobs = ([_ClassJob(c.seed, k, c.image_size, num_seen_sketches, c.photos_per_class,
                     sketch_dir, photo_dir) for k in seen]
          + [_ClassJob(c.seed, k, c.image_size, c.sketches_per_class, c.photos_per_class,
                       sketch_dir, photo_dir) for k in unseen]
          + [_ClassJob(c.seed, k, c.image_size, 0, c.pretrain_photos_per_class,
                       sketch_dir, pretrain_dir) for k in pretrain])
  if workers > 1:
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      list(pool.map(_render_class, jobs))
  else:
    for job in jobs:
      _render_class(job)

  list_dir = os.path.join(out, SPLIT.list_dir)
  os.makedirs(list_dir)
  train = range(c.sketches_per_class)
  lines = {
      "train_sketch": _list_lines("sketch", seen, train, "png"),
      "test_sketch": _list_lines("sketch", seen, range(c.sketches_per_class, num_seen_sketches),
                                 "png"),
      "train_photo": _list_lines("photo", seen, range(c.photos_per_class), "jpg"),
      "query": _list_lines("sketch", unseen, train, "png"),
      "gallery": _list_lines("photo", unseen, range(c.photos_per_class), "jpg"),
  }
  for role, list_file in SPLIT.list_files().items():
    _write_lines(os.path.join(list_dir, list_file), lines[role])
  _write_lines(os.path.join(list_dir, SPLIT.seen_class_file),
               [f"{class_name(k)} {i}" for i, k in enumerate(seen)])
  _write_lines(os.path.join(list_dir, SPLIT.unseen_class_file),
               [f"{class_name(k)} {i}" for i, k in enumerate(unseen)])

  spec = SPLIT.pretrain
  pretrain_lists = os.path.join(out, spec.list_dir)
  os.makedirs(pretrain_lists)
  num_val = c.pretrain_val_per_class
  lines["pretrain_val"] = _list_lines("pretrain_photo", pretrain, range(num_val), "jpg")
  lines["pretrain_train"] = _list_lines(
      "pretrain_photo", pretrain, range(num_val, c.pretrain_photos_per_class), "jpg")
  _write_lines(os.path.join(pretrain_lists, spec.train_list), lines["pretrain_train"])
  _write_lines(os.path.join(pretrain_lists, spec.val_list), lines["pretrain_val"])
  _write_lines(os.path.join(pretrain_lists, spec.class_file),
               [f"{class_name(k)} {i}" for i, k in enumerate(pretrain)])

  manifest = {
      "generator": "zsbir_jax.data.synthetic",
      "version": GENERATOR_VERSION,
      "config": dataclasses.asdict(c),
      "classes": {"seen": c.num_seen, "unseen": c.num_unseen, "pretrain": c.num_pretrain},
      "counts": {role: len(v) for role, v in sorted(lines.items())},
  }
  with open(os.path.join(out, SPLIT.manifest), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
    f.write("\n")
  if os.path.exists(final):
    shutil.rmtree(final)
  os.rename(out, final)
  return manifest


def contact_sheet(records: tuple[lists.Record, ...], num_classes: int = 8,
                  per_domain: int = 6, tile: int = 64) -> Image.Image:
  """A grid for eyeballing a split: per class (row), `per_domain` sketches then photos."""
  rows = []
  for label in sorted({r.label for r in records})[:num_classes]:
    rows.append([r.path for domain in (domains.SKETCH, domains.PHOTO)
                 for r in [r for r in records if r.label == label and r.domain == domain]
                 [:per_domain]])
  step = tile + 2
  sheet = Image.new("RGB", (2 * per_domain * step, len(rows) * step), (128, 128, 128))
  for row, paths in enumerate(rows):
    for col, path in enumerate(paths):
      image = Image.fromarray(images.load_rgb(path)).resize((tile, tile))
      sheet.paste(image, (col * step + 1, row * step + 1))
  return sheet
