"""Faces in dark and washed-out photos: what fer's exposure evening of face crops (align.even_exposure) recovers.

1. PublicTest crops as a dark or washed-out photo would give them: exposure scaled (x0.3, x0.15, x0.08), sensor
   noise added to a 96-pixel face before it is cropped to 48 (as fer crops a face of that size), a dim tone curve,
   a washed-out one; accuracy with the shipped model (flip TTA, as `fer predict` runs it) as they are and evened, and
   how many crops the evening touched (it leaves a crop whose 1st-99th percentiles span 100 grey levels or more).
2. End to end: the example photos darkened, through FaceAnalyzer with and without the evening: faces found and
   their labels (every face in them is happy).

The threshold comes from the training faces' contrast; the smoothing (sigma 0.7 px) was chosen among 0.5, 0.7, 1.0
on PublicTest, so part 1's evened figures are on the split they were tuned on. PrivateTest is not used.

Usage: python benchmarks/exposure.py [--data ../shared/data/fer2013]
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from common import ROOT, data_arg, machine, print_table, run_benchmark
from fercli.align import LOW_CONTRAST, even_exposure
from fercli.choices import TTA
from fercli.classifier import open_classifier
from fercli.config import DataConfig
from fercli.data import load_dataset
from fercli.faces import FaceAnalyzer


def at_96_pixels(faces: np.ndarray, exposure: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Faces seen 96 pixels tall in a photo at ``exposure`` with sensor noise of ``noise`` grey levels, then shrunk
    to 48 by area averaging as fer's crop does."""
    shrunk = []
    for face in faces:
        big = cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC) * exposure + rng.normal(0, noise, (96, 96))
        shrunk.append(cv2.resize(np.clip(big, 0, 255), (48, 48), interpolation=cv2.INTER_AREA))
    return np.stack(shrunk)


def conditions(faces: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "as taken": faces,
        "exposure x0.3": faces * 0.3,
        "exposure x0.15": faces * 0.15,
        "exposure x0.08": faces * 0.08,
        "x0.3, noise 4 at 96 px": at_96_pixels(faces, 0.3, 4, rng),
        "x0.15, noise 3 at 96 px": at_96_pixels(faces, 0.15, 3, rng),
        "x0.08, noise 2 at 96 px": at_96_pixels(faces, 0.08, 2, rng),
        "dim (tone curve ^2.2)": 255 * (faces / 255) ** 2.2,
        "washed out (x0.4 + 150)": faces * 0.4 + 150,
    }


def crops_table(data: str) -> None:
    split = load_dataset(DataConfig(root=data)).split("val")
    classifier = open_classifier(None)
    faces = split.images[:, 0].numpy().astype(np.float64)
    labels = split.labels.numpy()
    rows = []
    for name, crops in conditions(faces).items():
        crops = np.clip(crops, 0, 255).round().astype(np.uint8)
        evened = np.stack([even_exposure(crop) for crop in crops])
        touched = float(np.mean([not np.array_equal(a, b) for a, b in zip(crops, evened)]))

        def accuracy(batch: np.ndarray) -> float:
            return float((classifier.probabilities(batch, tta=TTA.flip).argmax(1) == labels).mean())

        rows.append([name, f"{accuracy(crops):.2%}", f"{accuracy(evened):.2%}", f"{touched:.1%}"])
    print_table(f"PublicTest ({len(labels)} crops), shipped model, flip TTA; evened below {LOW_CONTRAST} grey levels "
                "of contrast", ["crops", "as they are", "evened", "crops evened"], rows)


def photos_table() -> None:
    analyzers = {"as they are": FaceAnalyzer(even_exposure=False), "evened": FaceAnalyzer()}
    rows = []
    for name in ("astronaut", "two_faces"):
        photo = np.asarray(Image.open(ROOT / "examples" / f"{name}.jpg").convert("RGB")).astype(np.float64)
        for exposure in (1.0, 0.3, 0.15, 0.08, 0.04):
            dark = np.clip(photo * exposure, 0, 255).round().astype(np.uint8)
            cells = []
            for analyzer in analyzers.values():
                faces = analyzer.predict(dark)["faces"]
                cells.append(", ".join(f"{f['label']} {f['scores'][f['label']]:.0%}" for f in faces) or "no face")
            rows.append([f"{name}.jpg x{exposure}", *cells])
    print_table("Example photos darkened (every face happy), FaceAnalyzer defaults", ["photo", *analyzers], rows)


def main() -> None:
    args = data_arg(__doc__.splitlines()[0]).parse_args()
    print(f"machine: {machine()}")
    crops_table(args.data)
    photos_table()


if __name__ == "__main__":
    run_benchmark(main)
