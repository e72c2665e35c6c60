"""Image decoding: any file PIL reads -> RGB uint8 (H, W, 3), or an error naming the path.

Grayscale, palette, CMYK and 16-bit images become RGB; images with transparency (RGBA, LA, PA,
palette or grayscale with a transparent colour) are composited on white, so sketches stored as
black ink on a transparent background keep the white background they are seen with.
"""
import io

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255, 255)


class BadImageError(OSError):
  """A missing or undecodable image; `path` names it."""

  def __init__(self, path: str, reason: str):
    super().__init__(f"cannot read image {path!r}: {reason}")
    self.path = path


def to_rgb(image: Image.Image) -> Image.Image:
  """Converts a decoded PIL image to mode RGB, compositing transparency on white."""
  if image.mode.startswith("I;16") or image.mode == "I":
    # 16-bit grayscale: PIL's own conversion clips at 255 instead of rescaling.
    values = np.asarray(image, dtype=np.float64) / 257.0
    image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
  has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
  if has_alpha:
    background = Image.new("RGBA", image.size, _WHITE)
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
  return image.convert("RGB")


def decode_rgb(data: bytes, path: str, max_pixels: int | None = None) -> np.ndarray:
  """Decodes encoded image bytes to RGB uint8 (H, W, 3); `path` names the source in errors.

  With `max_pixels`, an image of more pixels is refused from its header, before decoding.
  """
  try:
    with Image.open(io.BytesIO(data)) as image:
      if max_pixels is not None and image.width * image.height > max_pixels:
        raise BadImageError(path, f"{image.width} x {image.height} pixels, more than the "
                            f"{max_pixels} allowed")
      image.load()
      rgb = to_rgb(image)
  except BadImageError:
    raise
  except Image.UnidentifiedImageError as e:
    raise BadImageError(path, "not a recognised image format") from e
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise BadImageError(path, f"{type(e).__name__}: {e}") from e
  return np.asarray(rgb, dtype=np.uint8)


def load_rgb(path: str) -> np.ndarray:
  """Reads and decodes the image file `path` to RGB uint8 (H, W, 3).

  Raises BadImageError (naming the path) if the file is missing, unreadable or not a complete
  image; truncated files are errors, never silently padded.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise BadImageError(path, f"{type(e).__name__}: {e.strerror or e}") from e
  return decode_rgb(data, path)
