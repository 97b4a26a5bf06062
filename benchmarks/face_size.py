"""Small faces: how small a face fer can still read, and what keeping smaller ones costs in phantom faces.

1. The classifier alone: PublicTest crops as fer would crop a face whose detector box is B pixels (the crop spans
   1.1 B, YuNet's framing): each 48x48 crop area-averaged down to that many pixels, then resized back up to 48 as
   fer's crop warp does; accuracy with the shipped model and flip TTA (`fer predict`'s default), per B.
2. The whole predict path: scenes of 1600x1200 pixels (JPEG), a group photo at the size it is shared on the web,
   holding 12 faces 20-48 px a side, the sample photos' faces with head and shoulders, and the same scenes without
   them, through FaceAnalyzer at several --min-face values: faces found by size, the label each gets against the
   one it gets in the full photo, phantom faces. (Planted PublicTest crops are no stand-in here: YuNet finds few
   tight crops this small, with no hair or chin around them.)

PublicTest only (the defaults are chosen on it); PrivateTest is not used.
Usage: python benchmarks/face_size.py [--data ../shared/data/fer2013] [--scenes 30]
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from common import data_arg, machine, print_table, run_benchmark
from detector import HEAD_MARGIN, background, faces_at, sample_heads, textures
from fercli.faces.align import YUNET_FRAMING
from fercli.choices import MIN_FACE, TTA
from fercli.config import DataConfig
from fercli.data.dataset import load_dataset
from fercli.faces.analyzer import FaceAnalyzer

BOX_SIDES = (44, 40, 36, 32, 28, 24, 20, 16, 12)  # 44: the crop's own 48 pixels (1.1 x 44)


def seen_at(faces: np.ndarray, box_side: int) -> np.ndarray:
    """48x48 crops as fer crops a face whose box is ``box_side`` px: only 1.1 x box_side pixels of detail."""
    pixels = min(48, round(YUNET_FRAMING.scale * box_side))
    small = [cv2.resize(f, (pixels, pixels), interpolation=cv2.INTER_AREA) for f in faces]
    return np.stack([cv2.resize(s, (48, 48), interpolation=cv2.INTER_LINEAR) for s in small])


def crops_table(split, analyzer: FaceAnalyzer) -> None:
    faces, labels = split.images[:, 0].numpy(), split.labels.numpy()
    rows = []
    for side in BOX_SIDES:
        right = analyzer.classifier.probabilities(seen_at(faces, side), tta=TTA.flip).argmax(1) == labels
        rows.append([f"{side} px", f"{min(48, round(YUNET_FRAMING.scale * side))} px", f"{right.mean():.2%}"])
    print_table(f"PublicTest ({len(labels):,} crops) seen as a face of B px, shipped model, flip TTA",
                ["face box B", "detail in the crop", "expression right"], rows)


def small_face_scene(faces: list[np.ndarray], rng: np.random.Generator, photos: list[np.ndarray], margin: float,
                     size: tuple[int, int] = (1600, 1200), sides: tuple[int, int] = (20, 48)):
    """A scene with ``faces`` planted on a jittered 4x3 grid, face sides log-uniform in ``sides``, and the scene
    alone. ``faces``: squares whose face spans 1/``margin`` of the side (gray crops or RGB heads)."""
    width, height = size
    empty = background(rng, width, height, photos)
    image, placed = empty.copy(), []
    for face, cell in zip(faces, rng.permutation(12)):
        side = int(round(math.exp(rng.uniform(math.log(sides[0]), math.log(sides[1])))))
        square = round(side * margin)
        x0 = int(cell % 4 * width / 4 + rng.integers(0, width // 4 - square))
        y0 = int(cell // 4 * height / 3 + rng.integers(0, height // 3 - square))
        pasted = cv2.resize(face, (square, square), interpolation=cv2.INTER_AREA)
        image[y0 : y0 + square, x0 : x0 + square] = pasted if pasted.ndim == 3 else pasted[:, :, None]
        placed.append(((x0 + square / 2, y0 + square / 2), side))
    return image, empty, placed


BANDS = ((20, 28), (28, 36), (36, 40), (40, 49))
MIN_FACES = (MIN_FACE, 32, 28, 24)


def scenes_table(scenes: int) -> None:
    rng = np.random.default_rng(5)
    photos = textures()
    analyzers = {size: FaceAnalyzer(min_face=size) for size in MIN_FACES}
    heads = sample_heads(analyzers[MIN_FACE])
    found, same, phantoms, free_phantoms = ({size: [] for size in MIN_FACES} for _ in range(4))
    sides = []
    for _ in range(scenes):
        chosen = [heads[i] for i in rng.integers(len(heads), size=12)]
        image, empty, placed = small_face_scene([h for h, _ in chosen], rng, photos, HEAD_MARGIN)
        image, empty = as_jpeg(image), as_jpeg(empty)
        sides += [side for _, side in placed]
        for size, analyzer in analyzers.items():
            record = analyzer.predict(image)
            hits = faces_at(record, [c for c, _ in placed])
            found[size] += [face is not None for face in hits]
            same[size] += [face is not None and face["label"] == label for face, (_, label) in zip(hits, chosen)]
            phantoms[size].append(len(record["faces"]) - sum(h is not None for h in hits))
            free_phantoms[size].append(len(analyzer.predict(empty)["faces"]))
    sides = np.array(sides)
    rows = []
    for size in MIN_FACES:
        hit, agree = np.array(found[size]), np.array(same[size])
        rows.append([f"{size}" + (" (default)" if size == MIN_FACE else ""), f"{hit.mean():.1%}",
                     *(f"{hit[(sides >= lo) & (sides < hi)].mean():.0%}" for lo, hi in BANDS),
                     f"{agree[hit].mean():.1%}" if hit.any() else "-", sum(phantoms[size]), sum(free_phantoms[size])])
    print_table(f"{scenes} scenes of 1600x1200 px (JPEG) holding 12 faces 20-48 px (the sample photos' {len(heads)} "
                f"faces, head and shoulders), and the same scenes without them; {machine()}",
                ["--min-face", "found", *(f"found {lo}-{hi - 1} px" for lo, hi in BANDS), "label as in the full photo",
                 "phantoms", "phantoms, no faces"], rows)


def as_jpeg(image: np.ndarray) -> np.ndarray:
    """The scene as it comes back from a JPEG at quality 90 (how photos are stored)."""
    _, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--skip-crops", action="store_true")
    args = parser.parse_args()
    if not args.skip_crops:
        crops_table(load_dataset(DataConfig(root=args.data)).split("val"), FaceAnalyzer())
    if args.scenes:
        scenes_table(args.scenes)


if __name__ == "__main__":
    run_benchmark(main)
