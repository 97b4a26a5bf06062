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
from pathlib import Path

import numpy as np

from fercli.choices import DETECT_SIZE, MIN_FACE, MIN_SCORE, TTA, DetectorName, Faces
from fercli.errors import CheckpointError, InputError
from fercli.faces.align import HAAR_FRAMING, YUNET_FRAMING, aligned_crop, even_exposure
from fercli.faces.detect import Detection, create_detector, quarter_turned
from fercli.faces.images import MAX_SIDE, Photo, resize_square
from fercli.faces.inputs import bytes_decoder, check_array, source_decoder
from fercli.faces.records import Face, ImageResult, face_record, min_face_advice
from fercli.faces.search import FaceSearch
from fercli.model.classifier import Classifier, open_classifier
from fercli.model.onnx_backend import TENCROP_NEEDS_PT

__all__ = ["Face", "FaceAnalyzer", "ImageResult", "min_face_advice"]  # the records, for callers of this module

CROP_SIDE = 96  # an image this small is taken to be a face crop already (FER-2013 is 48x48)
MIN_SIDE = 16  # smaller than this, an image cannot hold a face whose expression can be read


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
        self.search = FaceSearch(self.detector, detect_size=detect_size, min_face=min_face, faces=faces, orient=orient,
                                 small_faces=small_faces, even_exposure=even_exposure)
        self.framing = HAAR_FRAMING if detector == DetectorName.haar else YUNET_FRAMING
        self.detect_size, self.align, self.even_exposure = detect_size, align, even_exposure
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
            chunk = [self.read_and_find(path, error, orient) for path, error in items[start : start + self.batch_images]]
            self.classify([result for result, _ in chunk], [crops for _, crops in chunk])
            yield from (result for result, _ in chunk)

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
        crops = [aligned_crop(turned_gray, d, size, self.framing, self.align) for _, d in found]
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


