"""Reading image files safely: any format PIL knows, any mode, bounded memory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fercli.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # ~8000x8000: decoding more than this as RGB would take GBs of memory
MAX_SIDE = 4096  # photos are downscaled to this before detection; faces stay far above 48 px

# We enforce our own limit (MAX_PIXELS) with a clear message instead of PIL's bomb warning.
Image.MAX_IMAGE_PIXELS = None


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path, gray: bool, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode ``path`` to uint8 HxW (gray) or HxWx3 (RGB), never larger than ``max_side``.

    Raises InputError with a one-line reason for anything that is not a readable image.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return _decode(img, gray, max_side, path)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image PIL can read (is it really {path.suffix or 'an image'}?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - we disable PIL's limit
        raise InputError(f"{path}: image too large ({exc})") from None


def _decode(img: Image.Image, gray: bool, max_side: int, path: Path) -> np.ndarray:
    # JPEG can decode straight to a reduced scale (1/2..1/8): huge photos never get full size.
    img.draft("L" if gray else "RGB", (max_side, max_side))
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{path}: image too large ({width}x{height}, over {MAX_PIXELS // 1_000_000} megapixels); "
            "downscale it first"
        )
    img.load()
    img = _to_8bit(img)
    img = img.convert("L" if gray else "RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Palette, CMYK, alpha and 16-bit/float images to plain 8-bit RGB or L."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # PIL's own conversion clips 16-bit values at 255; rescale to the full range instead.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode not in ("L", "RGB"):
        return img.convert("RGB")
    return img


def resize_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxW or HxWx3 uint8 array to size x size (area-averaging when shrinking)."""
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    img = Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0))
