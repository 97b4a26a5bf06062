"""Face detection: YuNet (a CNN with five landmarks, the default) or OpenCV's Haar cascade.

Both look at a copy of the photo whose longest side is at most ``detect_size`` pixels and report
boxes in the photo's own pixels: detection cost stops growing with the megapixels, and a face too
small to find at that size is too small to read an expression from anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fercli.choices import DETECT_SIZE, MIN_SCORE, DetectorName
from fercli.errors import InputError
from fercli.faces.images import longest_side_for

THINNEST = 10  # px of the detector's copy: YuNet finds no face smaller, and pads thinner images with noise


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, width, height
    score: float | None  # detector confidence 0..1; Haar gives none
    # YuNet's five points: the subject's right eye, left eye, nose tip, right and left mouth corner
    # (so the first eye is on the image's left). Empty for Haar.
    landmarks: tuple[tuple[float, float], ...] = ()

    def scaled(self, factor: float) -> Detection:
        x, y, w, h = self.box
        return Detection((x * factor, y * factor, w * factor, h * factor), self.score,
                         tuple((px * factor, py * factor) for px, py in self.landmarks))

    def turned_back(self, turns: int, size: tuple[int, int]) -> Detection:
        """This detection, found in ``quarter_turned(image, turns)``, in the pixels of ``image`` (size: width, height).

        The landmarks keep their meaning (the subject's right eye stays first), so the eye line then tells how
        far the face is turned in the image, and an aligned crop comes out upright.
        """
        x, y, w, h = self.box
        points = [(x, y), (x + w, y + h), *self.landmarks]
        for step in range(turns % 4, 0, -1):  # undo one quarter turn at a time, the last first
            width_before = size[0] if step % 2 == 1 else size[1]  # the image before that turn
            points = [(width_before - v, u) for u, v in points]  # np.rot90: new (u, v) was old (width - v, u)
        (x0, y0), (x1, y1) = points[:2]
        return Detection((min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)), self.score, tuple(points[2:]))


def quarter_turned(image: np.ndarray, turns: int) -> np.ndarray:
    """The image turned counter-clockwise by ``turns`` x 90 degrees (np.rot90), as a contiguous array for OpenCV."""
    return np.ascontiguousarray(np.rot90(image, turns % 4)) if turns % 4 else image


def shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy no larger than ``max_side`` (more for a panorama: longest_side_for), area-averaged, and the factor
    that maps its pixels back."""
    import cv2

    height, width = image.shape[:2]
    factor = max(height, width) / longest_side_for(width, height, max_side)
    if factor <= 1:
        return image, 1.0
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, width / size[0]


class YuNet:
    """OpenCV's FaceDetectorYN over the vendored YuNet model; RGB or gray images in."""

    def __init__(self, *, detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE, model: Path | None = None):
        import cv2

        from fercli.model.shipped import yunet_model

        self.detect_size, self.min_score = detect_size, min_score
        self.net = cv2.FaceDetectorYN.create(model=str(model or yunet_model()), config="", input_size=(320, 320),
                                             score_threshold=min_score, nms_threshold=0.3, top_k=5000)

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Faces in ``image``, looked for in a copy no larger than ``max_side`` (default: detect_size)."""
        import cv2

        small, factor = shrink(image, max_side or self.detect_size)
        if min(small.shape[:2]) < THINNEST:  # no face fits; YuNet answers such strips with NaN or random boxes
            return []
        # YuNet was trained on OpenCV's BGR frames.
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _count, rows = self.net.detect(bgr)
        if rows is None:
            return []
        rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 2] > 0) & (rows[:, 3] > 0)]
        rows = rows[mostly_inside(rows[:, :4], small.shape[1], small.shape[0])]
        return [Detection(tuple(float(v) for v in row[:4]), float(row[14]),
                          tuple((float(row[i]), float(row[i + 1])) for i in range(4, 14, 2))).scaled(factor)
                for row in rows]


def mostly_inside(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which x, y, w, h boxes have at least half their area in the image (a face cut by the frame's edge does)."""
    across = np.clip(boxes[:, 0] + boxes[:, 2], 0, width) - np.clip(boxes[:, 0], 0, width)
    down = np.clip(boxes[:, 1] + boxes[:, 3], 0, height) - np.clip(boxes[:, 1], 0, height)
    return across * down >= 0.5 * boxes[:, 2] * boxes[:, 3]


class Haar:
    """OpenCV's frontal-face Haar cascade (boxes only, no landmarks, no score): the old default."""

    def __init__(self, *, detect_size: int = DETECT_SIZE, min_size: int = 24):
        import cv2

        xml = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml"
        if not hasattr(cv2, "CascadeClassifier") or not xml.is_file():
            raise InputError("this OpenCV has no Haar cascade; install opencv-python-headless<5, or use --detector yunet")
        self.cascade = cv2.CascadeClassifier(str(xml))
        self.detect_size, self.min_size = detect_size, min_size  # min_size: in detection pixels; 24 is the cascade's window

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        small, factor = shrink(image, self.detect_size)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        boxes = self.cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_size, self.min_size))
        return [Detection(tuple(float(v) for v in box), None).scaled(factor) for box in boxes]


Detector = YuNet | Haar


def create_detector(name: DetectorName, *, detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE) -> Detector:
    if detect_size < 64:
        raise InputError(f"--detect-size {detect_size}: too small to find faces; use 320 or more (default {DETECT_SIZE})")
    if not 0.0 < min_score < 1.0:
        raise InputError(f"--min-score {min_score}: give a detector score between 0 and 1 (default {MIN_SCORE})")
    if DetectorName(name) == DetectorName.haar:
        return Haar(detect_size=detect_size)
    return YuNet(detect_size=detect_size, min_score=min_score)
