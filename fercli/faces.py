"""The face pipeline: photo -> faces, each with a box, landmarks, a detector score and class probabilities.

``fer predict`` runs it on files; video and the web page run it on frames. For your own code:

    from fercli import FaceAnalyzer
    analyzer = FaceAnalyzer()                      # the shipped model (ONNX: no PyTorch import) + YuNet
    analyzer.predict("group.jpg")                  # the record `fer predict --json` prints for that file
    analyzer.predict(rgb_array)                    # HxWx3 RGB or HxW gray uint8 (OpenCV frames: bgr=True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fercli.align import HAAR_FRAMING, YUNET_FRAMING, aligned_crop, even_exposure
from fercli.choices import (CONFIDENT_UPRIGHT, DARK, DARK_MIN_SCORE, DETECT_SIZE, MIN_FACE, MIN_SCORE, SMALL_FACE, SMALLEST_FACE, TTA, TURN_MARGIN, DetectorName,
                            Faces)
from fercli.classifier import Classifier, open_classifier
from fercli.detect import Detection, YuNet, create_detector, quarter_turned, shrink
from fercli.errors import CheckpointError, InputError
from fercli.images import MAX_SIDE, STDIN, Photo, read_photo, read_photo_bytes, resize_square, stdin_bytes
from fercli.onnx_model import TENCROP_NEEDS_PT
from fercli.urls import download, is_url

CROP_SIDE = 96  # an image this small is taken to be a face crop already (FER-2013 is 48x48)
MIN_SIDE = 16  # smaller than this, an image cannot hold a face whose expression can be read


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the full-resolution, upright photo
    detector_score: float | None = None  # None: Haar (it has no score), --no-detect, or the image is a face crop
    landmarks: list[list[int]] | None = None  # eyes, nose tip, mouth corners (YuNet only)
    label: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"box": list(self.box), "label": self.label, "scores": self.scores,
                "detector_score": self.detector_score, "landmarks": self.landmarks}


@dataclass
class ImageResult:
    path: str
    status: str  # ok | no_face | error
    faces: list[Face] = field(default_factory=list)
    error: str = ""
    size: tuple[int, int] = (0, 0)  # width, height
    turned: int = 0  # degrees counter-clockwise the photo was turned to find its faces upright (0, 90, 180, 270)
    too_small: list[int] = field(default_factory=list)  # sides (px) of the faces found under min_face, left out

    def to_json(self) -> dict:
        record = {"path": self.path, "status": self.status, "size": list(self.size), "turned": self.turned,
                  "faces": [face.to_json() for face in self.faces]}
        if self.error:
            record["error"] = self.error
        if self.too_small:
            record["faces_under_min_face"] = len(self.too_small)
        return record


def min_face_advice(smallest: int, largest: int, *, one: bool = False) -> str:
    """What to do about faces found under --min-face (sides in px; ``one``: a single face): the --min-face that reads
    them, and its cost. One wording for photos and videos."""
    span = f"{smallest}-{largest} px" if smallest < largest else f"{smallest} px"
    return (f"({span}): --min-face {smallest} reads {'it' if one else 'them'}, "
            "less reliably (a face this small shows little)")


class FaceAnalyzer:
    """Finds faces and classifies their expressions; faces of many images share one forward pass.

    model: a .pt checkpoint or .onnx export (default: the shipped model). detector: yunet or haar, or
    None to treat each whole image as one face crop. detect_size: the longest side the detector sees.
    min_score: YuNet's score threshold. min_face: smallest face side kept, in the photo's pixels (YuNet's faces of
    SMALLEST_FACE px up to it are counted instead: "faces_under_min_face" in the record).
    faces: all or largest. align: turn each crop so the eyes are level (YuNet only). orient: when no face is
    found confidently upright, also look in the photo turned by 90, 180 and 270 degrees (YuNet only; for photos
    stored sideways or upside down without an EXIF tag; video frames skip it). tta: none, flip (each crop and
    its mirror image, averaged; twice the classifier's work) or tencrop (.pt models only). small_faces: look at a
    big photo again at twice the detector's size for faces too small for the usual copy (YuNet only; video frames
    skip it). even_exposure: a dark photo is also searched brightened (YuNet only; a face found only there must
    score DARK_MIN_SCORE), and a face crop of low contrast (a dark or washed-out photo) is stretched before it is
    classified.
    """

    def __init__(self, model: str | Path | None = None, *, detector: DetectorName | None = DetectorName.yunet,
                 detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE, min_face: int = MIN_FACE,
                 faces: Faces = Faces.all, align: bool = True, orient: bool = True, tta: TTA = TTA.flip,
                 small_faces: bool = True, even_exposure: bool = True, device: str = "auto", batch_images: int = 64):
        self.classifier: Classifier = open_classifier(Path(model) if model else None, device=device)
        if self.classifier.preprocess.channels != 1:
            raise CheckpointError("fer predicts with gray (1-channel) models only; this checkpoint takes colour input")
        self.detector = None if detector is None else create_detector(detector, detect_size=detect_size, min_score=min_score)
        self.framing = HAAR_FRAMING if detector == DetectorName.haar else YUNET_FRAMING
        self.detect_size, self.min_face, self.faces, self.align = detect_size, min_face, Faces(faces), align
        self.orient, self.small_faces, self.even_exposure = orient, small_faces, even_exposure
        self.batch_images = batch_images
        self.tta = TTA(tta)
        if self.tta == TTA.tencrop and self.classifier.path.suffix.lower() == ".onnx":
            raise InputError(TENCROP_NEEDS_PT)  # before any photo is read, not at the first face

    # ------------------------------------------------------------ the Python API

    def predict(self, image: str | Path | np.ndarray | bytes, *, bgr: bool = False, name: str = "<bytes>",
                orient: bool | None = None) -> dict:
        """One image -> the record ``fer predict --json`` prints.

        image: a path or an http(s) address; an RGB or gray uint8 array (OpenCV's BGR with bgr=True); or an encoded file's bytes
        (an upload), reported under ``name``. An unreadable image gives status "error", not an exception.
        orient: None follows the analyzer's setting; False looks for upright faces only (camera frames).
        """
        if isinstance(image, (bytes, bytearray)):
            data = bytes(image)

            def decode(side: int) -> Photo:
                return read_photo_bytes(data, name=name, max_side=side)

            try:
                photo = decode(2 * self.detect_size)
            except InputError as exc:
                return ImageResult(name, "error", error=str(exc).removeprefix(f"{name}: ")).to_json()
            result, crops = self.find_faces(name, photo, orient=orient, sharper=decode)
            self.classify([result], [crops])
            return result.to_json()
        if isinstance(image, np.ndarray):
            pixels = check_array(image, bgr)
            photo = Photo(pixels, (pixels.shape[1], pixels.shape[0]))
            result, crops = self.find_faces("<array>", photo, orient=orient)
            self.classify([result], [crops])
            return result.to_json()
        return next(self.analyze_files([(str(image), "")], orient=orient)).to_json()

    # ------------------------------------------------------------ files, batched

    def analyze_files(self, items: list[tuple[str, str]], *, orient: bool | None = None) -> Iterator[ImageResult]:
        """(path, error or "") pairs -> ImageResults in the same order; unreadable files get status error."""
        for start in range(0, len(items), self.batch_images):
            chunk = [self.read_and_find(path, error, orient) for path, error in items[start : start + self.batch_images]]
            self.classify([result for result, _ in chunk], [crops for _, crops in chunk])
            yield from (result for result, _ in chunk)

    def read_and_find(self, path: str, error: str, orient: bool | None) -> tuple[ImageResult, list[np.ndarray]]:
        if error:
            return ImageResult(path, "error", error=error), []
        try:
            data = download(path) if is_url(path) else stdin_bytes() if path == STDIN else None

            def decode(side: int) -> Photo:
                if data is not None:
                    return read_photo_bytes(data, name=path, max_side=side)
                return read_photo(Path(path), gray=False, max_side=side)

            # Decoded at twice the detector's size: enough for a 48x48 crop of any face found in the usual copy
            # (smaller faces, found by the closer look, are cropped from a sharper decoding: find_faces).
            photo = decode(2 * self.detect_size)
            return self.find_faces(path, photo, orient=orient, sharper=decode)
        except InputError as exc:
            return ImageResult(path, "error", error=str(exc).removeprefix(f"{path}: ")), []

    def find_faces(self, path: str, photo: Photo, *, orient: bool | None = None, small_faces: bool | None = None,
                   sharper: Callable[[int], Photo] | None = None) -> tuple[ImageResult, list[np.ndarray]]:
        """Faces of one decoded photo and their crops; orient, small_faces: None follows the analyzer's setting.
        sharper(max_side): the same photo decoded larger, for faces too small in ``photo`` to crop at the
        classifier's size (a file's or an upload's; an array has no more pixels than it holds)."""
        import cv2

        if min(photo.size) < MIN_SIDE:
            width, height = photo.size
            return ImageResult(path, "error", error=f"image too small ({width}x{height} pixels); a face needs at least "
                               f"{MIN_SIDE}x{MIN_SIDE}", size=photo.size), []
        pixels = photo.pixels
        gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        size = self.classifier.preprocess.image_size
        height, width = gray.shape
        if self.detector is None or max(photo.size) <= CROP_SIDE:
            face = Face((0, 0, *photo.size))
            return ImageResult(path, "ok", [face], size=photo.size), [resize_square(gray, size)]
        to_photo = photo.size[0] / width  # decoded pixels -> the full photo's pixels
        closer = self.small_faces if small_faces is None else small_faces
        orient = self.orient if orient is None else orient
        turns, found, seen = self.detect_upright(pixels, to_photo, orient, closer)
        if self.even_exposure and isinstance(self.detector, YuNet) and is_dark(gray):
            turns, found = self.with_faces_in_the_dark(pixels, gray, turns, found, to_photo, orient, closer)
        # Faces left out for their size, to say so (a group photo at web size, a wide shot: faces of 25-40 px). Not
        # Haar's (its small boxes are mostly not faces), nor beside --faces largest (one face was asked for).
        counted = isinstance(self.detector, YuNet) and not (found and self.faces == Faces.largest)
        too_small = self.under_min_face(seen, found, to_photo) if counted else []
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
        crops = [aligned_crop(turned_gray, d, size, self.framing, self.align) for _, d in found]
        faces = [face_record(back.scaled(to_photo)) for back, _ in found]
        return ImageResult(path, "ok", faces, size=photo.size, turned=90 * turns, too_small=too_small), crops

    def detect_upright(self, pixels: np.ndarray, to_photo: float, orient: bool, closer: bool = False
                       ) -> tuple[int, list[Detection], list[Detection]]:
        """Quarter turns (np.rot90's, 0-3) that make the photo's faces upright, the faces found in it so turned, and
        every detection of that turn, of any size (under_min_face counts the small ones; no detector pass more).

        YuNet finds an upside-down or sideways face too, with a lower score (the astronaut: 0.93 upright, 0.83-0.85
        turned) and landmarks that mean nothing, so its crop would be read the wrong way up. The other turns are
        tried only when no face scores CONFIDENT_UPRIGHT upright, and win only by TURN_MARGIN (benchmarks/detector.py).
        """
        small, factor = shrink(pixels, self.detect_size)  # once: the turned views turn this copy
        closer = closer and isinstance(self.detector, YuNet) and max(pixels.shape[:2]) >= 1.5 * self.detect_size

        def seen_turned(turns: int) -> list[Detection]:  # every size, in the pixels of the decoded photo, turned
            return [d.scaled(factor) for d in self.detector.detect(quarter_turned(small, turns))]

        def with_small_faces(turns: int, seen: list[Detection]) -> tuple[int, list[Detection], list[Detection]]:
            # Only in the turn chosen, by the usual copy's faces: the closer look costs 4 of its passes. Not for a
            # portrait or a close shot (a face of 2 x SMALL_FACE or more in the usual copy): faces far smaller
            # than the subject's are a crowd behind, not the people photographed.
            found = self.keep(seen, to_photo)
            if closer and all(max(d.box[2], d.box[3]) < 2 * SMALL_FACE * factor for d in found):
                more = self.closer_look(quarter_turned(pixels, turns), found, factor)
                found, seen = self.keep(found + more, to_photo), seen + more
            return turns, found, seen

        views = {0: seen_turned(0)}
        scored = isinstance(self.detector, YuNet)  # Haar gives no score to compare turns by
        if not orient or not scored or best_score(self.keep(views[0], to_photo)) >= CONFIDENT_UPRIGHT:
            return with_small_faces(0, views[0])
        views |= {turns: seen_turned(turns) for turns in (1, 2, 3)}
        turns = max(views, key=lambda t: best_score(self.keep(views[t], to_photo)) - (TURN_MARGIN if t else 0.0))
        return with_small_faces(turns, views[turns])  # a tie keeps upright

    def with_faces_in_the_dark(self, pixels: np.ndarray, gray: np.ndarray, turns: int, found: list[Detection],
                               to_photo: float, orient: bool, closer: bool) -> tuple[int, list[Detection]]:
        """A dark photo searched again brightened: faces found there that score DARK_MIN_SCORE and overlap none of
        ``found`` are added (in the turn chosen; when nothing was found, in the turn the brightened search picks)."""
        bright = brightened(pixels, gray)
        if found:
            _, more, _ = self.detect_upright(quarter_turned(bright, turns), to_photo, False, closer)
        else:
            turns, more, _ = self.detect_upright(bright, to_photo, orient, closer)
        more = [d for d in more if (d.score or 0.0) >= DARK_MIN_SCORE and all(overlap(d.box, f.box) < 0.3 for f in found)]
        return turns, self.keep(found + more, to_photo)

    @staticmethod
    def sharper_side(found: list[Detection], decoded: tuple[int, int], full: tuple[int, int], crop: int) -> int | None:
        """The longest side to decode the photo at so that its smallest face spans ``crop`` pixels, as far as the photo
        has pixels (and MAX_SIDE allows); None when every face already does, or nothing sharper is there."""
        smallest = min((max(d.box[2], d.box[3]) for d in found), default=crop)
        longest, available = max(decoded), min(max(full), MAX_SIDE)
        if smallest >= crop or available <= longest * 1.1:
            return None
        return min(available, math.ceil(longest * crop / smallest))

    def closer_look(self, pixels: np.ndarray, found: list[Detection], factor: float) -> list[Detection]:
        """Faces the detector finds in ``pixels`` at twice its size that are small in its usual copy (``factor``: that
        copy's pixels -> these) and overlap none of ``found``: the small faces of a group photo."""
        larger = self.detector.detect(pixels, max_side=2 * self.detect_size)
        return [d for d in larger if max(d.box[2], d.box[3]) < SMALL_FACE * factor
                and all(overlap(d.box, f.box) < 0.3 for f in found)]

    def keep(self, detections: list[Detection], to_photo: float) -> list[Detection]:
        """Drop faces below min_face; the largest only, if asked."""
        kept = [d for d in detections if max(d.box[2], d.box[3]) * to_photo >= self.min_face]
        if self.faces == Faces.largest and kept:
            kept = [max(kept, key=lambda d: d.box[2] * d.box[3])]
        return kept

    def under_min_face(self, seen: list[Detection], found: list[Detection], to_photo: float) -> list[int]:
        """Sides (photo pixels, ascending) of the faces detected under min_face but of SMALLEST_FACE or more, each
        once (the closer look finds again what the usual copy found) and none that is one of ``found``."""
        distinct: list[Detection] = list(found)
        for d in sorted(seen, key=lambda d: -(d.score or 0.0)):
            if SMALLEST_FACE <= max(d.box[2], d.box[3]) * to_photo < self.min_face and all(
                    overlap(d.box, e.box) < 0.3 for e in distinct):
                distinct.append(d)
        return sorted(int(max(d.box[2], d.box[3]) * to_photo) for d in distinct[len(found):])  # down: --min-face keeps

    def classify(self, results: list[ImageResult], crops: list[list[np.ndarray]]) -> None:
        flat = [even_exposure(crop) if self.even_exposure else crop for per_image in crops for crop in per_image]
        if not flat:
            return
        probs = self.classifier.probabilities(np.stack(flat), tta=self.tta)
        if not np.isfinite(probs).all():  # a broken model: say so, rather than print NaN (which is not JSON)
            raise CheckpointError(f"{getattr(self.classifier, 'path', 'the model')}: gives NaN probabilities; it is "
                                  "damaged or its training diverged")
        faces = [face for result in results for face in result.faces]
        classes = self.classifier.classes
        for face, row in zip(faces, probs.tolist()):
            face.scores = {name: round(p, 4) for name, p in zip(classes, row)}
            face.label = classes[int(np.argmax(row))]


def is_dark(gray: np.ndarray) -> bool:
    """Even the brightest parts of the photo are dim: an underexposed shot, a dark room (a lit window is no dark photo).
    Measured on every 4th pixel of every 4th row: asked of every photo and video frame, it must cost next to nothing."""
    return float(np.percentile(gray[::4, ::4], 99.5)) < DARK


def brightened(pixels: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """A dark photo stretched to full range by its grey levels (1st to 99.5th percentile), for the detector's eyes."""
    lo, hi = np.percentile(gray[::4, ::4], (1, 99.5))
    return np.clip((pixels.astype(np.float32) - lo) * (255 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller box's area: a small face inside a larger box counts as the same face."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-9, min(a[2] * a[3], b[2] * b[3]))


def best_score(detections: list[Detection]) -> float:
    return max((d.score or 0.0 for d in detections), default=0.0)


def face_record(detection: Detection) -> Face:
    box = tuple(int(round(v)) for v in detection.box)
    landmarks = [[int(round(x)), int(round(y))] for x, y in detection.landmarks] or None
    score = None if detection.score is None else round(detection.score, 4)
    return Face(box, detector_score=score, landmarks=landmarks)


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
