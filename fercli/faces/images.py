"""Reading image files safely: the formats photos come in, any mode, memory and time bounded before decoding.

One policy for every entry point (files, uploads, stdin, datasets): an allow-list of formats (PIL knows more, some of
them unsafe to open: EPS runs Ghostscript, ICO and ICNS decode their largest picture while opening); a pixel budget
on the size a file declares, before anything is decoded (a progressive JPEG keeps every coefficient of its declared
size whatever the scale it is decoded at); PIL's own bomb check kept on at fer's budget, as an error; regular files
only (a FIFO named photo.jpg would block a read for ever)."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fercli.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".apng", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".avif",
                  ".heic", ".heif"}  # .jfif: how Windows browsers save many JPEGs
# Formats whose files may hold an animation, which fer reads as a clip (video.AnimationSource). Not MPO: the JPEGs of
# many phones and cameras carry a second picture (a depth map, a preview) that PIL counts as a frame; they are photos.
ANIMATED_FORMATS = {"GIF", "WEBP", "PNG"}
# HEIC (iPhones' default) is an ISO media file whose "ftyp" box names one of these brands at bytes 8-12. PIL reads
# it only with the pillow-heif plugin (fercli[heic]: 27 MB, its HEVC codecs carry LGPL/GPL licences, so it is optional).
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
HEIF_HINT = 'a HEIC/HEIF photo (iPhones\' default format): pip install "fercli[heic]" to read it, or save it as JPEG'
# Camera RAW photos: PIL opens some as TIFFs, but gets only the small preview inside (a NEF's is 160x120), where faces are
# too small to find; fer says so instead of answering about the preview.
RAW_SUFFIXES = {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf", ".rw2", ".pef",
                ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".mrw"}
RAW_HINT = ("a camera RAW photo, which fer does not read: use the JPEG the camera saved beside it, or export one "
            "(the camera's software, Lightroom, darktable)")
# Files people hand over that hold photos without being one, by their first bytes.
HOLDER_HINTS = {b"PK\x03\x04": "a zip archive: unzip it and give fer the folder",
                b"%PDF": "a PDF: save its pictures as images (or take screenshots) and give fer those"}
MAX_PIXELS = 64_000_000  # ~8000x8000: decoding more than this as RGB would take GBs of memory
# A baseline JPEG is decoded at 1/2, 1/4 or 1/8 scale (draft), so it may declare more, up to this: a 1/8-scale decoding
# of it stays under MAX_PIXELS. Every other format, progressive JPEGs included, is held to MAX_PIXELS as declared.
MAX_DECLARED_PIXELS = 64 * MAX_PIXELS
# PIL's names of the formats photos come in (the JPEG opener also opens MPO, phones' JPEGs with a second picture inside;
# AVIF and HEIF where this Pillow, or the pillow-heif plugin, reads them).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF")
MAX_STDIN_BYTES = 100_000_000
MAX_SIDE = 4096  # never decode more than this per side unless asked: faces stay far above 48 px
PANORAMA_STRETCH = 4  # a panorama's long side may be up to this many times the usual limit (see longest_side_for)
ORIENTATION = 0x0112  # the EXIF tag phones use instead of rotating the pixels
# What turns each EXIF orientation upright (what PIL's ImageOps.exif_transpose does, without its metadata copying).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}

# PIL's own check, at fer's budget: opening a file that declares more raises (DecompressionBombError past twice this,
# a warning that open_image turns into an error past it), whoever opens it.
Image.MAX_IMAGE_PIXELS = MAX_DECLARED_PIXELS


STDIN = "-"  # fer predict - reads one photo piped in: curl -s URL | fer predict -, or a screenshot tool's output


@functools.cache
def stdin_bytes() -> bytes:
    """The photo piped to fer, read once (an annotated copy needs it again)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError(f"{STDIN}: reads a photo piped in (cat photo.jpg | fer predict -); nothing is piped")
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise InputError(f"{STDIN}: more than {MAX_STDIN_BYTES // 1_000_000} MB piped in; a photo is smaller")
    return data


def longest_side_for(width: int, height: int, max_side: int) -> int:
    """The longest side a photo is decoded or shrunk to: ``max_side``, and for a panorama (wider than 2:1) as much
    more as keeps its short side at half ``max_side`` (up to PANORAMA_STRETCH times): a row of faces across a
    panorama stays as many pixels high as in a 2:1 photo, instead of shrinking with the panorama's length."""
    aspect = max(width, height) / max(1, min(width, height))
    return round(max_side * min(max(1.0, aspect / 2), PANORAMA_STRETCH))


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def not_a_photo(name: str, head: bytes) -> str | None:
    """Why a file that people take for photos is none, in a line (a RAW photo, a zip or PDF holding photos); None for
    anything else. ``head``: the file's first bytes."""
    if Path(name).suffix.lower() in RAW_SUFFIXES:
        return RAW_HINT
    return next((hint for magic, hint in HOLDER_HINTS.items() if head.startswith(magic)), None)


def is_animated(path: Path) -> bool | None:
    """True for an animated GIF, WebP or PNG, False for any other image PIL reads, None when PIL cannot read it."""
    try:
        with open_image(path, str(path)) as img:
            return img.format in ANIMATED_FORMATS and bool(getattr(img, "is_animated", False))
    except (InputError, OSError, SyntaxError, ValueError):
        return None


@dataclass(frozen=True)
class Photo:
    pixels: np.ndarray  # uint8 HxW (gray) or HxWx3 (RGB), upright, at most max_side per side
    size: tuple[int, int]  # width, height of the full-resolution photo, upright: boxes are reported in these pixels


def read_image(path: Path, gray: bool, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode ``path`` to uint8 HxW (gray) or HxWx3 (RGB), upright, never larger than ``max_side``."""
    return read_photo(path, gray=gray, max_side=max_side).pixels


def read_photo(path: Path, *, gray: bool, max_side: int = MAX_SIDE) -> Photo:
    """Decode ``path`` upright (EXIF orientation applied), no larger than ``max_side`` per side.

    Raises InputError with a one-line reason for anything that is not a readable image.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    check_regular_file(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    return _open_and_decode(path, str(path), path.suffix, gray, max_side)


def check_regular_file(path: Path) -> None:
    """A pipe, a device or a socket named like a photo would block a read for ever, or never end: refused."""
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file (a pipe, a device or a folder); give a photo file, or pipe a "
                         f"photo in with {STDIN}")


@contextlib.contextmanager
def open_image(source, name: str):
    """PIL's Image.open under fer's policy: the allowed formats only, and the declared size checked before any pixel
    is decoded. Raises InputError (UnidentifiedImageError for a format outside the list)."""
    if isinstance(source, Path):
        check_regular_file(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(source, formats=readable_formats())
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(f"{name}: image too large (it declares over {MAX_DECLARED_PIXELS // 1_000_000} "
                             "megapixels); downscale it first") from None
        with img:
            check_declared_size(img, name)
            yield img


def readable_formats() -> list[str]:
    Image.init()  # every plugin registered, so a missing one (HEIF without pillow-heif) is known as missing
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]


def check_declared_size(img: Image.Image, name: str) -> None:
    width, height = img.size
    draftable = img.format in ("JPEG", "MPO") and not img.info.get("progressive") and not img.info.get("progression")
    budget = MAX_DECLARED_PIXELS if draftable else MAX_PIXELS
    if width * height > budget:
        kind = "" if draftable else (" as a progressive JPEG" if img.format in ("JPEG", "MPO") else "")
        raise InputError(f"{name}: image too large ({width}x{height}{kind}, over {budget // 1_000_000} megapixels); "
                         "downscale it first")


def read_photo_bytes(data: bytes, *, name: str = "upload", gray: bool = False, max_side: int = MAX_SIDE) -> Photo:
    """The same as read_photo, for an image held in memory (an HTTP upload)."""
    if not data:
        raise InputError(f"{name}: empty (0 bytes)")
    return _open_and_decode(io.BytesIO(data), name, "", gray, max_side)


def _open_and_decode(source, name: str, suffix: str, gray: bool, max_side: int) -> Photo:
    if Path(name).suffix.lower() in RAW_SUFFIXES:  # first: PIL may open a TIFF-based RAW (NEF, DNG) as its preview
        raise InputError(f"{name}: {RAW_HINT}")
    try:
        if _is_heif(source) and not _heif_plugin_registered():
            raise InputError(f"{name}: {HEIF_HINT}")
        with open_image(source, name) as img, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(img, gray, max_side, name)
    except UnidentifiedImageError:
        if reason := not_a_photo(name, _head(source, 8)):
            raise InputError(f"{name}: {reason}") from None
        if _looks_like_video(_head(source, 200)):  # an upload, or a video named like a photo
            raise InputError(f"{name}: a video, not a photo; fer predict reads videos (fer predict clip.mp4), the API "
                             "and FaceAnalyzer.predict one image at a time") from None
        if suffix and suffix.lower() not in IMAGE_SUFFIXES:  # fer predict tried it as a video first (video.is_clip)
            raise InputError(f"{name}: neither an image PIL reads nor a video OpenCV's FFmpeg reads") from None
        raise InputError(f"{name}: not an image fer reads (is it really {suffix or 'an image'}? fer reads "
                         "JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF and HEIC)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name}: corrupt or truncated image ({exc})") from None


def _head(source: Path | io.BytesIO, size: int) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()[:size]
    with open(source, "rb") as f:
        return f.read(size)


def _is_heif(source: Path | io.BytesIO) -> bool:
    head = _head(source, 12)
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def _looks_like_video(head: bytes) -> bool:
    """The signatures of the video containers people have: MP4/MOV/3GP (an ISO media "ftyp" box that is no HEIF or
    AVIF photo), Matroska/WebM, AVI, FLV, MPEG transport and program streams, ASF/WMV."""
    return ((head[4:8] == b"ftyp" and head[8:12] not in HEIF_BRANDS | {b"avif", b"avis"})
            or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or (len(head) > 188 and head[0] == head[188] == 0x47))


def _heif_plugin_registered() -> bool:
    """Register pillow-heif with PIL on first need (it applies HEIF's own rotation and clears the EXIF one)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _decode(img: Image.Image, gray: bool, max_side: int, path: Path | str) -> Photo:
    width, height = img.size
    # JPEG decodes straight to 1/2, 1/4 or 1/8 scale: ask for the smallest scale whose longest side still
    # reaches max_side (draft never goes below the size asked for), so a 12-megapixel photo costs a quarter.
    longest, max_side = max(width, height), longest_side_for(width, height, max_side)
    if longest > max_side:
        img.draft("L" if gray else "RGB", (math.ceil(width * max_side / longest), math.ceil(height * max_side / longest)))
    if img.size[0] * img.size[1] > MAX_PIXELS:  # what would be decoded, after any JPEG reduction
        raise InputError(
            f"{path}: image too large ({width}x{height}, over {MAX_PIXELS // 1_000_000} megapixels); "
            "downscale it first"
        )
    orientation = img.getexif().get(ORIENTATION, 1)  # after the size check: PNG reads its pixels to find EXIF
    turned = orientation in (5, 6, 7, 8)  # stored sideways: width and height swap
    img.load()
    if img.mode in ("RGBA", "LA", "PA", "P") and max(img.size) > max_side:  # shrink before the alpha is composited
        img = img.convert("RGBA")
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    img = _to_8bit(img)
    img = img.convert("L" if gray else "RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    if orientation in UPRIGHT:
        img = img.transpose(UPRIGHT[orientation])
    return Photo(np.asarray(img, dtype=np.uint8), (height, width) if turned else (width, height))


def frame_durations(path: Path) -> tuple[list[float], bool]:
    """How long, in seconds, each frame of an animated image is shown, as browsers show it: a GIF that says 0 or 10 ms
    (many do, meaning "as fast as you can") is played at 100 ms a frame; and whether the file is whole (False: it
    stops, damaged or cut, after the frames listed)."""
    durations: list[float] = []
    whole = True
    with open_image(path, str(path)) as img, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for index in range(img.n_frames):
                img.seek(index)
                img.load()  # WebP says a frame's duration only once it is decoded
                ms = img.info.get("duration") or 0
                durations.append((ms if ms > 10 else 100) / 1000)
        except (OSError, EOFError, ValueError, SyntaxError):
            whole = False  # the frames before the damage still count
    return durations, whole


def animation_frames(path: Path, count: int) -> Iterator[np.ndarray]:
    """The first ``count`` frames of an animated image as uint8 HxWx3 RGB, one at a time, each as shown (composited
    over the frames before it, transparency over white)."""
    with open_image(path, str(path)) as img:
        for index in range(count):
            try:
                with warnings.catch_warnings():  # per frame: a filter held across yields would leak to the caller
                    warnings.simplefilter("ignore")
                    img.seek(index)
                    frame = _to_8bit(img.convert("RGBA")).convert("RGB")
            except (OSError, EOFError, ValueError, SyntaxError):
                return
            yield np.asarray(frame, dtype=np.uint8)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Palette, CMYK, alpha and 16-bit/float images to plain 8-bit RGB or L."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # PIL's own conversion clips 16-bit values at 255; rescale to the full range instead, a band of rows at a time
        # (a float copy of a whole 64-megapixel image would take 512 MB).
        arr = np.asarray(img)
        lo, hi = float(arr.min()), float(arr.max())
        out = np.zeros(arr.shape, dtype=np.uint8)
        if hi > lo:
            for top in range(0, arr.shape[0], 256):
                out[top : top + 256] = (arr[top : top + 256].astype(np.float32) - lo) * np.float32(255.0 / (hi - lo))
        return Image.fromarray(out, mode="L")
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
