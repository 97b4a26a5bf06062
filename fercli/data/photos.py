"""Photo datasets through the face pipeline (``data.faces=detect``, ``fer eval --detect``).

Each image goes through what ``fer predict`` does before its classifier (the same detector, search, alignment,
framing and exposure), keeping the largest face; its crop is the dataset's image. An image where no face is found
is kept as its whole picture, marked missed, so that a score can count it as wrong instead of dropping it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from fercli.choices import Faces
from fercli.faces.finder import FaceFinder
from fercli.faces.images import read_image, resize_square

PIPELINE_VERSION = "1"  # part of the decode cache's key: change it when the pipeline's crops change


class PhotoCropper:
    """Thread-safe: each thread gets its own detector (OpenCV's keeps per-call state)."""

    def __init__(self, crop_size: int):
        self.crop_size, self.local = crop_size, threading.local()

    def finder(self) -> FaceFinder:
        if not hasattr(self.local, "finder"):
            self.local.finder = FaceFinder(crop_size=self.crop_size, faces=Faces.largest)
        return self.local.finder

    def crop(self, path: Path) -> tuple[np.ndarray | None, bool, str | None]:
        """(crop [S, S] uint8, face found, error): the largest face's crop; without a face, the whole image."""
        result, crops = self.finder().read_and_find(str(path), "", None)
        if result.status == "error":
            return None, False, f"{path}: {result.error}"
        if crops:
            return crops[0], True, None
        return resize_square(read_image(path, gray=True), self.crop_size), False, None
