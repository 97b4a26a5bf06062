"""From a detection to a face crop framed the way FER-2013's crops are, with the eyes level, and exposed as they are.

FER-2013's 48x48 faces are square crops from brow-top to chin and a little wider than the cheeks.
A YuNet box is narrower (about 0.8 of such a crop's width) and about as tall; the framing below maps
one to the other and was chosen by measurement (benchmarks/detector.py plants PublicTest faces into
larger images and scores the whole path: detector, alignment, crop, classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fercli.faces.detect import Detection

# Grey levels between a crop's 1st and 99th percentiles: 99% of FER-2013's training faces span more than 110, and a
# face in a dark or washed-out photo far fewer (benchmarks/exposure.py).
LOW_CONTRAST = 100
DENOISE_SIGMA = 0.7  # pixels: the stretch amplifies a dark photo's sensor noise as much as its face


@dataclass(frozen=True)
class Framing:
    scale: float  # crop side / mean of the box's width and height
    shift: float  # crop centre below the box centre (negative: above), in crop sides, along the face's vertical


YUNET_FRAMING = Framing(scale=1.1, shift=0.0)
HAAR_FRAMING = Framing(scale=1.2, shift=0.0)  # Haar boxes are square and sit on the eyes-to-mouth region


@dataclass(frozen=True)
class Square:
    """A square in the photo, turned by ``angle`` radians (its top edge runs along the eye line)."""

    cx: float
    cy: float
    side: float
    angle: float


def eye_angle(detection: Detection) -> float:
    """Angle of the line from the subject's right eye to the left eye; 0 when level (or unknown)."""
    if len(detection.landmarks) < 2:
        return 0.0
    (rx, ry), (lx, ly) = detection.landmarks[:2]
    return math.atan2(ly - ry, lx - rx)


def face_square(detection: Detection, framing: Framing, align: bool = True) -> Square:
    x, y, w, h = detection.box
    side = framing.scale * (w + h) / 2
    angle = eye_angle(detection) if align else 0.0
    down = (-math.sin(angle), math.cos(angle))  # the face's own "down" in photo coordinates
    cx = x + w / 2 + framing.shift * side * down[0]
    cy = y + h / 2 + framing.shift * side * down[1]
    return Square(cx, cy, side, angle)


def crop_square(gray: np.ndarray, square: Square, size: int) -> np.ndarray:
    """The square resampled to ``size`` x ``size``; edge pixels repeat where it leaves the photo.

    Only the patch around the face is touched: it is first area-averaged down to about twice the
    output size (a plain warp from a large face would alias), then warped once.
    """
    import cv2

    cos, sin = math.cos(square.angle), math.sin(square.angle)
    half = square.side * (abs(cos) + abs(sin)) / 2 + 1  # half-extent of the turned square's bounding box
    height, width = gray.shape[:2]
    x0, y0 = max(0, int(square.cx - half)), max(0, int(square.cy - half))
    x1, y1 = min(width, int(math.ceil(square.cx + half)) + 1), min(height, int(math.ceil(square.cy + half)) + 1)
    if x1 <= x0 or y1 <= y0:  # entirely outside the photo: nothing to crop
        x0, y0, x1, y1 = 0, 0, width, height
    patch = gray[y0:y1, x0:x1]
    fx = fy = 1.0
    shrink_to = 2 * size / square.side
    if shrink_to < 1:
        new_w, new_h = max(1, round(patch.shape[1] * shrink_to)), max(1, round(patch.shape[0] * shrink_to))
        fx, fy = new_w / patch.shape[1], new_h / patch.shape[0]
        patch = cv2.resize(patch, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # Output pixel (u, v) -> photo point c + R(angle) [(u + .5) / size - .5, (v + .5) / size - .5] * side
    # (continuous coordinates: pixel i spans [i, i + 1)), then to the patch's pixel indices.
    step = square.side / size
    ox = square.cx - (cos - sin) * square.side / 2 + (cos - sin) * step / 2
    oy = square.cy - (sin + cos) * square.side / 2 + (sin + cos) * step / 2
    matrix = np.array([[cos * step * fx, -sin * step * fx, (ox - x0) * fx - 0.5],
                       [sin * step * fy, cos * step * fy, (oy - y0) * fy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(patch, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def aligned_crop(gray: np.ndarray, detection: Detection, size: int, framing: Framing, align: bool = True) -> np.ndarray:
    return crop_square(gray, face_square(detection, framing, align), size)


def even_exposure(crop: np.ndarray) -> np.ndarray:
    """A face crop from a dark or washed-out photo, stretched to the contrast of the faces the classifier learnt from
    (its 1st-99th percentiles to 0-255) and lightly smoothed; a crop with the usual contrast is returned as it is.
    Without it, a face in an underexposed photo reads as angry (PublicTest crops at 15% exposure: 33% accuracy)."""
    import cv2

    lo, hi = np.percentile(crop, (1, 99))
    if hi - lo >= LOW_CONTRAST:
        return crop
    stretched = np.clip((crop.astype(np.float32) - lo) * (255 / max(hi - lo, 1.0)), 0, 255)
    return cv2.GaussianBlur(stretched, (0, 0), DENOISE_SIGMA).round().astype(np.uint8)
