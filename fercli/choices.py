"""The choices users make on the command line, as Enums (Typer checks them at the edge and lists them in
--help), and the face pipeline's defaults, shared by the CLI and the Python API. A leaf: imports nothing,
so ``fer --help`` stays instant."""

from __future__ import annotations

from enum import Enum


class TTA(str, Enum):
    """Test-time augmentation: the views whose probabilities are averaged."""

    none = "none"
    flip = "flip"
    tencrop = "tencrop"


class DetectorName(str, Enum):
    """yunet: a CNN with five landmarks (the default); haar: OpenCV's Haar cascade, boxes only."""

    yunet = "yunet"
    haar = "haar"


class Labels(str, Enum):
    """Which labels to score against: FER-2013's own, or FER+'s crowd majority (ten votes per image)."""

    fer2013 = "fer2013"
    ferplus = "ferplus"


class Faces(str, Enum):
    all = "all"
    largest = "largest"


# Face pipeline defaults (benchmarks/detector.py measured them).
DETECT_SIZE = 640  # longest side the detector looks at: YuNet's training resolution
MIN_SCORE = 0.6  # YuNet score threshold: on planted faces 0.6 kept 2-3 points more faces than 0.7 for one phantom in 3,589 scenes
MIN_FACE = 40  # faces smaller than this (pixels of the full photo) are too small to read an expression from
SEGMENT_S = 300.0  # fer predict --ray: a longer video's five-minute parts go to several workers at once
# A photo with no face of MIN_FACE px counts the faces of SMALLEST_FACE px or more the detector found, to say they are
# there and how to read them (--min-face): PublicTest crops seen as 24-px faces are read right 56% of the time, as
# 28-px ones 64%, 36-px ones 68%, full-size ones 70% (benchmarks/face_size.py); YuNet finds few faces under 24 px.
SMALLEST_FACE = 24
# Photos stored sideways or upside down without an EXIF tag (faces/detect.py's turned_back, faces/search.py's detect_upright):
# YuNet scores the sample photos' faces 0.93-0.94 upright and 0.79-0.85 turned a quarter or half turn, so a face
# scoring CONFIDENT_UPRIGHT ends the search at no cost; otherwise a turned view must beat upright by TURN_MARGIN.
CONFIDENT_UPRIGHT = 0.9
TURN_MARGIN = 0.02
# Small faces in big photos (faces/search.py's closer_look): YuNet misses most faces under 40 px in its 640-px copy (22% found
# in benchmarks/detector.py), the faces of a group photo. A photo decoded at 1.5x DETECT_SIZE or more is looked at
# again at twice the size, and faces found there that are under SMALL_FACE px in the usual copy, overlapping none found
# there, are added; unless the usual copy holds a face of 2 x SMALL_FACE px or more (a portrait, a close shot).
SMALL_FACE = 48
# Dark photos (faces/search.py's search, benchmarks/exposure.py): YuNet loses faces below about 5% of a normal exposure.
# A photo whose brightest grey (99.5th percentile) is under DARK is also searched brightened; a face found only there
# must score DARK_MIN_SCORE: faces recovered at 4% exposure scored 0.87-0.92, the phantoms that darkened smooth noise
# gave once brightened 0.75-0.82 (as many as the same noise gives at full exposure), at 2% the faces 0.79-0.84.
DARK = 64
DARK_MIN_SCORE = 0.85
