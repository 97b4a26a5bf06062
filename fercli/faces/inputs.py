"""The inputs the face pipeline reads: files, addresses, standard input, uploaded bytes, arrays -> a decoded photo.

A path or address string is read as given: a local file, "-" for standard input, an http(s) address downloaded.
That suits a command line; a web app that passes on strings from its users should pass bytes instead
(``FaceAnalyzer.predict(data: bytes)``), which are only ever decoded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fercli.errors import InputError
from fercli.faces.images import STDIN, Photo, read_photo, read_photo_bytes, stdin_bytes
from fercli.faces.urls import download, is_url


def source_decoder(path: str) -> Callable[[int], Photo]:
    """decode(max_side) for a path, an http(s) address or "-" (standard input); an address or standard input is read
    once, here, so the photo can be decoded again larger without reading it twice."""
    if is_url(path) or path == STDIN:
        return bytes_decoder(download(path) if is_url(path) else stdin_bytes(), name=path)
    return lambda side: read_photo(Path(path), gray=False, max_side=side)


def bytes_decoder(data: bytes, *, name: str) -> Callable[[int], Photo]:
    """decode(max_side) for an encoded file's bytes (an upload), reported under ``name``."""
    return lambda side: read_photo_bytes(data, name=name, max_side=side)


def check_array(image: np.ndarray, bgr: bool) -> np.ndarray:
    """A caller's array as uint8 HxW or HxWx3 RGB, or one line saying what is wrong with it."""
    if image.dtype != np.uint8:
        raise InputError(f"image array of dtype {image.dtype}: give uint8 pixels (0-255)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # drop alpha
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or min(image.shape[:2]) < 1:
        raise InputError(f"image array of shape {image.shape}: give HxW (gray) or HxWx3 (RGB) pixels")
    if image.ndim == 3 and bgr:
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)
