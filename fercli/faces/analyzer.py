"""The face pipeline as a library: FaceAnalyzer finds faces (faces.finder) and classifies them (model.classifier).

``fer predict`` runs it on files; video and the web page run it on frames. For your own code:

    from fercli import FaceAnalyzer
    analyzer = FaceAnalyzer()                      # the shipped model (ONNX: no PyTorch import) + YuNet
    analyzer.predict("group.jpg")                  # the record `fer predict --json` prints for that file
    analyzer.predict(rgb_array)                    # HxWx3 RGB or HxW gray uint8 (OpenCV frames: bgr=True)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fercli.choices import DETECT_SIZE, MIN_FACE, MIN_SCORE, TTA, DetectorName, Faces
from fercli.errors import CheckpointError, InputError
from fercli.faces.finder import FaceFinder
from fercli.faces.images import Photo
from fercli.faces.inputs import bytes_decoder, check_array
from fercli.faces.records import Face, ImageResult, min_face_advice
from fercli.model.classifier import Classifier, open_classifier
from fercli.model.onnx_backend import TENCROP_NEEDS_PT

__all__ = ["Face", "FaceAnalyzer", "ImageResult", "min_face_advice"]  # the records, for callers of this module


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
    classified. threads: the classifier's threads (an ONNX model's; default: the cores).
    """

    def __init__(self, model: str | Path | None = None, *, detector: DetectorName | None = DetectorName.yunet,
                 detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE, min_face: int = MIN_FACE,
                 faces: Faces = Faces.all, align: bool = True, orient: bool = True, tta: TTA = TTA.flip,
                 small_faces: bool = True, even_exposure: bool = True, device: str = "auto", batch_images: int = 64,
                 threads: int | None = None):
        self.classifier: Classifier = open_classifier(Path(model) if model else None, device=device, threads=threads)
        if self.classifier.preprocess.channels != 1:
            raise CheckpointError("fer predicts with gray (1-channel) models only; this checkpoint takes colour input")
        self.finder = FaceFinder(crop_size=self.classifier.preprocess.image_size, detector=detector, detect_size=detect_size,
                                 min_score=min_score, min_face=min_face, faces=faces, align=align, orient=orient,
                                 small_faces=small_faces, even_exposure=even_exposure)
        self.detector, self.detect_size, self.find_faces = self.finder.detector, detect_size, self.finder.find_faces
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
        A string is trusted as a command line's argument: any local path is read, "-" reads standard input, and an
        address is downloaded. A web app passing on what its users send should give bytes (or an array) instead.
        orient: None follows the analyzer's setting; False looks for upright faces only (camera frames).
        """
        if isinstance(image, (bytes, bytearray)):
            decode = bytes_decoder(bytes(image), name=name)
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
            chunk = [self.finder.read_and_find(path, error, orient) for path, error in items[start : start + self.batch_images]]
            self.classify([result for result, _ in chunk], [crops for _, crops in chunk])
            yield from (result for result, _ in chunk)

    def classify(self, results: list[ImageResult], crops: list[list[np.ndarray]]) -> None:
        flat = [crop for per_image in crops for crop in per_image]
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


