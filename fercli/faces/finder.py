"""From a decoded photo to its faces' records and crops, framed as FER-2013's faces are and ready to classify.

What ``fer predict`` does before the classifier, and all that ``fer eval --detect`` (``data.faces=detect``) does to
a photo dataset, so that both see the same crops."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fercli.choices import DETECT_SIZE, MIN_FACE, MIN_SCORE, DetectorName, Faces
from fercli.errors import InputError
from fercli.faces.align import HAAR_FRAMING, YUNET_FRAMING, aligned_crop, even_exposure
from fercli.faces.detect import Detection, create_detector, quarter_turned
from fercli.faces.images import MAX_SIDE, Photo, resize_square
from fercli.faces.inputs import source_decoder
from fercli.faces.records import Face, ImageResult, face_record
from fercli.faces.search import FaceSearch

CROP_SIDE = 96  # an image this small is taken to be a face crop already (FER-2013 is 48x48)
MIN_SIDE = 16  # smaller than this, an image cannot hold a face whose expression can be read


class FaceFinder:
    """Finds the faces of photos and crops them at ``crop_size`` (the classifier's image size); the options as
    FaceAnalyzer takes them."""

    def __init__(self, *, crop_size: int, detector: DetectorName | None = DetectorName.yunet, detect_size: int = DETECT_SIZE,
                 min_score: float = MIN_SCORE, min_face: int = MIN_FACE, faces: Faces = Faces.all, align: bool = True,
                 orient: bool = True, small_faces: bool = True, even_exposure: bool = True):
        self.detector = None if detector is None else create_detector(detector, detect_size=detect_size, min_score=min_score)
        self.search = FaceSearch(self.detector, detect_size=detect_size, min_face=min_face, faces=faces, orient=orient,
                                 small_faces=small_faces, even_exposure=even_exposure)
        self.framing = HAAR_FRAMING if detector == DetectorName.haar else YUNET_FRAMING
        self.crop_size, self.detect_size, self.align, self.even_exposure = crop_size, detect_size, align, even_exposure

    def finish(self, crop: np.ndarray) -> np.ndarray:
        """A crop as the classifier gets it: a low-contrast one (a dark or washed-out photo) stretched, if asked."""
        return even_exposure(crop) if self.even_exposure else crop

    def read_and_find(self, path: str, error: str, orient: bool | None) -> tuple[ImageResult, list[np.ndarray]]:
        if error:
            return ImageResult(path, "error", error=error), []
        try:
            decode = source_decoder(path)
            # Decoded at twice the detector's size: enough for a 48x48 crop of any face found in the usual copy
            # (smaller faces, found by the closer look, are cropped from a sharper decoding: find_faces).
            return self.find_faces(path, decode(2 * self.detect_size), orient=orient, sharper=decode)
        except InputError as exc:
            return ImageResult(path, "error", error=str(exc).removeprefix(f"{path}: ")), []

    def find_faces(self, path: str, photo: Photo, *, orient: bool | None = None, small_faces: bool | None = None,
                   sharper: Callable[[int], Photo] | None = None) -> tuple[ImageResult, list[np.ndarray]]:
        """Faces of one decoded photo and their crops; orient, small_faces: None follows this finder's setting.
        sharper(max_side): the same photo decoded larger, for faces too small in ``photo`` to crop at the
        classifier's size (a file's or an upload's; an array has no more pixels than it holds)."""
        import cv2

        if min(photo.size) < MIN_SIDE:
            width, height = photo.size
            return ImageResult(path, "error", error=f"image too small ({width}x{height} pixels); a face needs at least "
                               f"{MIN_SIDE}x{MIN_SIDE}", size=photo.size), []
        pixels = photo.pixels
        gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        size = self.crop_size
        height, width = gray.shape
        if self.detector is None or max(photo.size) <= CROP_SIDE:
            face = Face((0, 0, *photo.size))
            return ImageResult(path, "ok", [face], size=photo.size), [self.finish(resize_square(gray, size))]
        to_photo = photo.size[0] / width  # decoded pixels -> the full photo's pixels
        turns, found, too_small = self.search.search(pixels, gray, to_photo, orient=orient, small_faces=small_faces)
        if not found:
            return ImageResult(path, "no_face", size=photo.size, too_small=too_small), []
        # Crops come from the turned photo (upright faces, with or without alignment); boxes go back to the photo.
        found = [(d.turned_back(turns, (width, height)), d) for d in found]
        found.sort(key=lambda pair: (pair[0].box[0], pair[0].box[1]))  # left to right: a stable reading order
        side = sharper and self.sharper_side([d for _, d in found], (width, height), photo.size, size)
        if side:
            bigger = sharper(side).pixels
            gray = bigger if bigger.ndim == 2 else cv2.cvtColor(bigger, cv2.COLOR_RGB2GRAY)
            found = [(back, d.scaled(bigger.shape[1] / width)) for back, d in found]  # crops only: boxes stay as found
        turned_gray = quarter_turned(gray, turns)
        crops = [self.finish(aligned_crop(turned_gray, d, size, self.framing, self.align)) for _, d in found]
        faces = [face_record(back.scaled(to_photo)) for back, _ in found]
        return ImageResult(path, "ok", faces, size=photo.size, turned=90 * turns, too_small=too_small), crops



    @staticmethod
    def sharper_side(found: list[Detection], decoded: tuple[int, int], full: tuple[int, int], crop: int) -> int | None:
        """The longest side to decode the photo at so that its smallest face spans ``crop`` pixels, as far as the photo
        has pixels (and MAX_SIDE allows); None when every face already does, or nothing sharper is there."""
        smallest = min((max(d.box[2], d.box[3]) for d in found), default=crop)
        longest, available = max(decoded), min(max(full), MAX_SIDE)
        if smallest >= crop or available <= longest * 1.1:
            return None
        return min(available, math.ceil(longest * crop / smallest))
