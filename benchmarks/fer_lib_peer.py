"""Runs inside a virtual environment holding the `fer` PyPI library (not fer's own): benchmarks/wild.py's peer.

Reads a JSON list of {"path", "mode"} on stdin and prints a JSON list of labels, one per image, in order: the
largest face's top emotion, or null where the library finds no face. mode "detect": the library's own face detector
(its default, OpenCV's Haar cascade) on the photo; mode "crops": the whole image is the face."""

import json
import sys

import cv2

try:
    from fer import FER
except ImportError:  # 25.x keeps it in its submodule
    from fer.fer import FER


def main() -> None:
    detector = FER(mtcnn=False)
    labels = []
    for job in json.load(sys.stdin):
        image = cv2.imread(job["path"])
        if image is None:
            labels.append(None)
            continue
        height, width = image.shape[:2]
        boxes = [(0, 0, width, height)] if job["mode"] == "crops" else None
        faces = detector.detect_emotions(image, face_rectangles=boxes)
        if not faces:
            labels.append(None)
            continue
        largest = max(faces, key=lambda face: face["box"][2] * face["box"][3])
        labels.append(max(largest["emotions"], key=largest["emotions"].get))
    json.dump(labels, sys.stdout)


if __name__ == "__main__":
    main()
