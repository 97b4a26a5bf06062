"""Inference on photos: find faces with OpenCV's Haar cascade, crop them, classify them in batches."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from typing import Protocol

import numpy as np

from fercli.errors import CheckpointError, InputError
from fercli.images import is_image_path, read_image, resize_square
from fercli.shipped import default_checkpoint

CROP_SIDE = 96  # an image this small is taken to be a face crop already (FER-2013 is 48x48)
FACE_MARGIN = 0.1  # widen Haar boxes a little: FER-2013 crops include the chin and brows


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the original image
    label: str = ""
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class ImageResult:
    path: str
    status: str  # ok | no_face | error
    faces: list[Face] = field(default_factory=list)
    error: str = ""
    size: tuple[int, int] = (0, 0)  # width, height

    def to_json(self) -> dict:
        record = {"path": self.path, "status": self.status, "size": list(self.size),
                  "faces": [{"box": list(f.box), "label": f.label, "scores": f.scores} for f in self.faces]}
        if self.error:
            record["error"] = self.error
        return record


def expand_inputs(items: Iterable[str]) -> list[tuple[str, str]]:
    """Files, folders (recursive) and globs -> [(path, error or "")], in a stable order."""
    found: list[tuple[str, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
            found += [(str(p), "") for p in images] or [(item, "folder holds no images (.jpg, .png, .bmp, .webp)")]
        elif path.exists():
            found.append((item, ""))
        elif any(ch in item for ch in "*?["):
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            found += [(p, "") for p in matches] or [(item, "pattern matches no files")]
        else:
            found.append((item, "no such file or folder"))
    return found


class FaceDetector:
    def __init__(self, min_face: int = 40, mode: str = "all"):
        import cv2

        if mode not in ("all", "largest"):
            raise InputError(f"--faces {mode!r}: use all or largest")
        xml = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml"
        if not hasattr(cv2, "CascadeClassifier") or not xml.is_file():
            raise InputError("this OpenCV has no Haar cascade; install opencv-python-headless<5 (or use --no-detect)")
        self.cascade = cv2.CascadeClassifier(str(xml))
        self.min_face, self.mode = min_face, mode

    def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        import cv2

        boxes = self.cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_face, self.min_face))
        boxes = [tuple(int(v) for v in b) for b in boxes]
        if self.mode == "largest" and boxes:
            return [max(boxes, key=lambda b: b[2] * b[3])]
        return sorted(boxes, key=lambda b: (b[0], b[1]))  # left to right: a stable, readable order


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Square crop around ``box`` widened by FACE_MARGIN, edge-padded where it leaves the image."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * FACE_MARGIN)))
    cx, cy = x + w / 2, y + h / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = max(0, -left, -top, left + side - gray.shape[1], top + side - gray.shape[0])
    padded = np.pad(gray, pad, mode="edge") if pad else gray
    crop = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    return resize_square(np.ascontiguousarray(crop), size)


class FaceClassifier(Protocol):
    classes: tuple[str, ...]
    image_size: int
    channels: int

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """uint8 face crops [N, S, S] -> calibrated probabilities [N, K]."""


def load_classifier(checkpoint: Path | None, device_name: str = "auto") -> FaceClassifier:
    """ONNX files run on onnxruntime (CPU, starts fast: no PyTorch import); .pt checkpoints on PyTorch.

    The shipped model comes in both forms: ONNX by default, the .pt when a device is named.
    """
    on_cpu = device_name.strip().lower() in ("auto", "cpu")
    path = checkpoint or default_checkpoint(".onnx" if on_cpu else ".pt")
    if path.suffix.lower() == ".onnx":
        if not on_cpu:
            raise InputError(f"--device {device_name}: ONNX models run on the CPU; pass a .pt checkpoint to use {device_name}")
        from fercli.onnx_model import OnnxClassifier

        return OnnxClassifier(path)
    from fercli.checkpoint import load_model
    from fercli.device import resolve_device
    from fercli.inference import TorchClassifier

    device = resolve_device(device_name)
    return TorchClassifier(load_model(path, device), device)


class Predictor:
    """Turns image paths into ImageResults; faces from many images share one forward pass."""

    def __init__(self, classifier: FaceClassifier, detector: FaceDetector | None, batch_images: int = 64):
        self.classifier, self.detector, self.batch_images = classifier, detector, batch_images
        if classifier.channels != 1:
            raise CheckpointError("fer predict supports gray (1-channel) models only")

    def run(self, items: list[tuple[str, str]]) -> Iterator[tuple[ImageResult, np.ndarray | None]]:
        for start in range(0, len(items), self.batch_images):
            chunk = [self.find_faces(path, error) for path, error in items[start : start + self.batch_images]]
            self.classify([c[0] for c in chunk], [c[2] for c in chunk])
            yield from ((result, image) for result, image, _ in chunk)

    def find_faces(self, path: str, error: str):
        if error:
            return ImageResult(path, "error", error=error), None, []
        try:
            gray = read_image(Path(path), gray=True)
        except InputError as exc:
            return ImageResult(path, "error", error=str(exc).removeprefix(f"{path}: ")), None, []
        height, width = gray.shape
        if self.detector is None or max(height, width) <= CROP_SIDE:
            boxes = [(0, 0, width, height)]
            crops = [resize_square(gray, self.classifier.image_size)]
        else:
            boxes = self.detector.detect(gray)
            crops = [crop_face(gray, box, self.classifier.image_size) for box in boxes]
        status = "ok" if boxes else "no_face"
        return ImageResult(path, status, [Face(b) for b in boxes], size=(width, height)), gray, crops

    def classify(self, results: list[ImageResult], crops: list[list[np.ndarray]]) -> None:
        flat = [c for per_image in crops for c in per_image]
        if not flat:
            return
        probs = self.classifier.probabilities(np.stack(flat))
        faces = [f for r in results for f in r.faces]
        classes = self.classifier.classes
        for face, row in zip(faces, probs.tolist()):
            face.scores = {name: round(p, 4) for name, p in zip(classes, row)}
            face.label = classes[int(np.argmax(row))]
