"""The fixed choices users make on the command line, as Enums: Typer checks them at the edge and lists them
in --help. A leaf: imports nothing, so ``fer --help`` stays instant."""

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


class Faces(str, Enum):
    all = "all"
    largest = "largest"
