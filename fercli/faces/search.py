"""Where the faces of one photo are: the detector's passes over it upright and turned, brightened when dark, and
looked at closer for the small faces of a group photo; faces under min_face counted, not kept."""

from __future__ import annotations

import numpy as np

from fercli.choices import CONFIDENT_UPRIGHT, DARK, DARK_MIN_SCORE, SMALL_FACE, SMALLEST_FACE, TURN_MARGIN, Faces
from fercli.faces.detect import Detection, YuNet, quarter_turned, shrink

class FaceSearch:
    """The faces of one photo, as the detector finds them. min_face, faces, orient, small_faces and even_exposure as
    FaceAnalyzer takes them (it holds one of these)."""

    def __init__(self, detector, *, detect_size: int, min_face: int, faces: Faces, orient: bool, small_faces: bool,
                 even_exposure: bool):
        self.detector, self.detect_size, self.min_face, self.faces = detector, detect_size, min_face, Faces(faces)
        self.orient, self.small_faces, self.even_exposure = orient, small_faces, even_exposure

    def search(self, pixels: np.ndarray, gray: np.ndarray, to_photo: float, *, orient: bool | None = None,
               small_faces: bool | None = None) -> tuple[int, list[Detection], list[int]]:
        """Quarter turns that make the faces upright, the faces kept (in the decoded photo's pixels, turned) and the
        sides of those left out under min_face. ``to_photo``: decoded pixels -> the full photo's pixels; orient,
        small_faces: None follows this search's setting."""
        closer = self.small_faces if small_faces is None else small_faces
        orient = self.orient if orient is None else orient
        turns, found, seen = self.detect_upright(pixels, to_photo, orient, closer)
        if self.even_exposure and isinstance(self.detector, YuNet) and is_dark(gray):
            turns, found = self.with_faces_in_the_dark(pixels, gray, turns, found, to_photo, orient, closer)
        # Faces left out for their size, to say so (a group photo at web size, a wide shot: faces of 25-40 px). Not
        # Haar's (its small boxes are mostly not faces), nor beside --faces largest (one face was asked for).
        counted = isinstance(self.detector, YuNet) and not (found and self.faces == Faces.largest)
        return turns, found, self.under_min_face(seen, found, to_photo) if counted else []

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
