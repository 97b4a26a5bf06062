"""What the face pipeline answers: a record per image, with a record per face (``fer predict --json`` prints them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fercli.faces.detect import Detection


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

    @classmethod
    def from_json(cls, record: dict) -> Face:
        return cls(tuple(record["box"]), detector_score=record["detector_score"], landmarks=record["landmarks"],
                   label=record["label"], scores=record["scores"])



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

    @classmethod
    def from_json(cls, record: dict, too_small: list[int] = ()) -> ImageResult:
        """A record back (from another process); ``too_small``: the sides the record only counts."""
        return cls(record["path"], record["status"], [Face.from_json(f) for f in record["faces"]], record.get("error", ""),
                   tuple(record["size"]), record["turned"], list(too_small))



def min_face_advice(smallest: int, largest: int, *, one: bool = False) -> str:
    """What to do about faces found under --min-face (sides in px; ``one``: a single face): the --min-face that reads
    them, and its cost. One wording for photos and videos."""
    span = f"{smallest}-{largest} px" if smallest < largest else f"{smallest} px"
    return (f"({span}): --min-face {smallest} reads {'it' if one else 'them'}, "
            "less reliably (a face this small shows little)")



def face_record(detection: Detection) -> Face:
    box = tuple(int(round(v)) for v in detection.box)
    landmarks = [[int(round(x)), int(round(y))] for x, y in detection.landmarks] or None
    score = None if detection.score is None else round(detection.score, 4)
    return Face(box, detector_score=score, landmarks=landmarks)
