"""The face pipeline on photos: detectors side by side, and FER-2013 faces planted into larger images.

1. Planted faces: FER-2013 crops of one split, upscaled (64-320 px) and pasted at random places into
   640x480-1600x1200 scenes (photo textures, smooth noise), half of them tilted by up to 25 degrees.
   The whole predict path runs on each scene (detector, alignment, crop, classifier) and is scored
   against classifying the original 48x48 crops directly. It also counts phantom faces (detections
   away from the planted face) by score threshold, and sweeps the crop framing: pick on --split val
   (PublicTest), then report --split test (PrivateTest) once with the chosen framing.
2. Photos: Haar (the old default: full resolution) vs Haar and YuNet at --detect-size, on the example
   photos, a face-free photo and planted scenes, each resized to several sizes: faces found, extra
   boxes and time per photo (decode + detect).
3. Photos stored turned (sideways or upside down, no EXIF tag): planted scenes, the sample photos and
   face-free scenes, each stored at 0, 90, 180 and 270 degrees, through FaceAnalyzer with the search of
   turned views (the default) and without (--no-orient): faces found, turn chosen, expressions read right,
   phantom faces, time per photo.
4. Group photos (--groups-only): 12-megapixel JPEGs holding 12 planted faces each, 40-160 px a side (the faces
   of a group photo), and the same scenes without faces, through FaceAnalyzer with the closer look at small
   faces (the default) and without: faces found, expressions read right, phantom faces, time per photo.
5. Occluded faces (--occluded-only): planted faces with the lower face covered (a mask), the eyes covered (dark
   glasses), a hand over mouth and cheek, or the left half hidden, drawn on the 48x48 crop before planting: faces
   found, expressions right, mean confidence, and confident mistakes (a wrong label at 70% or more).

Usage: python benchmarks/detector.py [--split val] [--faces 1000] [--data ../shared/data/fer2013] [--sweep]
       [--model CANDIDATE] [--against SHIPPED]   (part 1: a candidate against the model it would replace, paired)
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common import data_arg, machine, print_table, run_benchmark, sample_photos
from fercli.faces.align import YUNET_FRAMING, Framing, aligned_crop, even_exposure
from fercli.model.classifier import open_classifier
from fercli.config import DataConfig
from fercli.data.dataset import load_dataset
from fercli.choices import DETECT_SIZE, MIN_SCORE, TTA
from fercli.faces.detect import Detection, Haar, YuNet
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.images import read_photo
from fercli.evaluate.metrics import paired_comparison

SCORES = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Scene:
    image: np.ndarray  # RGB
    center: tuple[float, float]  # the planted face's centre
    side: float
    label: int
    tilt: float  # degrees


def textures() -> list[np.ndarray]:
    """Face-free photos (scikit-learn's samples) as backgrounds."""
    photos = sample_photos()
    return [np.asarray(photos[name]) for name in ("china", "flower")]


def background(rng: np.random.Generator, width: int, height: int, photos: list[np.ndarray]) -> np.ndarray:
    if rng.random() < 0.5:
        photo = photos[rng.integers(len(photos))]
        return cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    coarse = rng.normal(128, 40, (max(2, height // 40), max(2, width // 40), 3)).clip(0, 255).astype(np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def plant(face: np.ndarray, label: int, rng: np.random.Generator, photos: list[np.ndarray]) -> Scene:
    width = int(rng.choice([640, 1024, 1600]))
    height = width * 3 // 4
    side = int(rng.integers(64, min(320, height // 2)))
    image = background(rng, width, height, photos)
    x0, y0 = int(rng.integers(side // 2, width - 3 * side // 2)), int(rng.integers(side // 2, height - 3 * side // 2))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    image[y0 : y0 + side, x0 : x0 + side] = big[:, :, None]
    center = (x0 + side / 2, y0 + side / 2)
    tilt = float(rng.uniform(-25, 25)) if rng.random() < 0.5 else 0.0
    if tilt:
        turn = cv2.getRotationMatrix2D(center, tilt, 1.0)
        image = cv2.warpAffine(image, turn, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return Scene(image, center, side, label, tilt)


def planted_faces(split: str, count: int, data: str, sweep: bool, model: Path | None = None,
                  against: Path | None = None) -> None:
    dataset = load_dataset(DataConfig(root=data))
    chosen = dataset.split(split)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)
    photos = textures()
    classifier = open_classifier(model)
    detector = YuNet(detect_size=DETECT_SIZE, min_score=min(SCORES))
    scenes, hits, phantoms, seconds = [], [], [], []
    for i in picks:
        scene = plant(chosen.images[i, 0].numpy(), int(chosen.labels[i]), rng, photos)
        start = time.perf_counter()
        found = detector.detect(scene.image)
        seconds.append(time.perf_counter() - start)
        near = [d for d in found if math.dist(box_centre(d.box), scene.center) < scene.side / 2]
        hits.append(max(near, key=lambda d: d.score) if near else None)
        phantoms.append([d.score for d in found if d not in near])
        scenes.append(scene)
    labels = np.array([s.label for s in scenes])
    print(f"\n{len(scenes)} {split} faces planted into scenes; YuNet at {DETECT_SIZE} px, "
          f"median {statistics.median(seconds) * 1000:.0f} ms a scene; {machine()}")
    rows = []
    for threshold in SCORES:
        found = np.array([h is not None and h.score >= threshold for h in hits])
        extra = sum(sum(s >= threshold for s in p) for p in phantoms)
        rows.append([threshold, f"{found.mean():.1%}", extra, f"{extra / len(scenes):.3f}"])
    print_table("detector score threshold (YuNet)", ["min score", "planted faces found", "phantom boxes", "per scene"], rows)

    found = np.array([h is not None and h.score >= MIN_SCORE for h in hits])
    sizes = np.array([s.side * DETECT_SIZE / max(s.image.shape[:2]) for s in scenes])  # face side as the detector sees it
    upright = np.array([s.tilt == 0 for s in scenes])
    rows = [[name, int(mask.sum()), f"{found[mask].mean():.1%}"] for name, mask in (
        ("face side < 40 px at detect size", sizes < 40), ("40-80 px", (sizes >= 40) & (sizes < 80)),
        ("80 px or more", sizes >= 80), ("upright", upright), ("tilted up to 25 degrees", ~upright))]
    print_table(f"planted faces found at min score {MIN_SCORE}, by kind", ["faces", "count", "found"], rows)

    gray_scenes = [cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY) for s in scenes]
    idx = np.flatnonzero(found)

    def right_through_path(framing: Framing, align: bool, subset: np.ndarray, tta: TTA = TTA.none,
                           model=classifier) -> np.ndarray:
        """Which of the faces the detector found (within ``subset``) detector + crop + ``model`` read right."""
        pick = [i for i in idx if subset[i]]
        # Evened as FaceAnalyzer.classify evens them (a crop of the usual contrast is left as it is).
        crops = np.stack([even_exposure(aligned_crop(gray_scenes[i], hits[i], 48, framing, align)) for i in pick])
        return model.probabilities(crops, tta=tta).argmax(1) == labels[pick]

    def accuracy(framing: Framing, align: bool, subset: np.ndarray, tta: TTA = TTA.none) -> float:
        return float(right_through_path(framing, align, subset, tta).mean())

    everything, tilted = np.ones(len(scenes), dtype=bool), ~upright
    rows = []
    for tta in (TTA.none, TTA.flip):
        right = classifier.probabilities(chosen.images[picks, 0].numpy(), tta=tta).argmax(1) == labels
        rows.append([f"direct: the original 48x48 crops, TTA {tta.value}", f"{right[idx].mean():.2%}",
                     f"{right[idx][upright[idx]].mean():.2%}", f"{right[idx][tilted[idx]].mean():.2%}"])
    for name, framing, align, tta in (("YuNet + alignment, TTA none", YUNET_FRAMING, True, TTA.none),
                                      ("YuNet + alignment, TTA flip (fer predict's default)", YUNET_FRAMING, True, TTA.flip),
                                      ("YuNet, no alignment, TTA none", YUNET_FRAMING, False, TTA.none)):
        rows.append([name, *(f"{accuracy(framing, align, subset, tta):.2%}" for subset in (everything, upright, tilted))])
    print_table(f"accuracy on the {len(idx)} planted {split} faces found (of {len(scenes)})",
                ["path", "all found", "upright", "tilted"], rows)
    if against is not None:  # a release candidate against the model it would replace, on the same faces and crops
        baseline = open_classifier(against)
        for tta in (TTA.none, TTA.flip):
            ours = right_through_path(YUNET_FRAMING, True, everything, tta)
            theirs = right_through_path(YUNET_FRAMING, True, everything, tta, model=baseline)
            paired = paired_comparison(ours, theirs)
            print(f"YuNet + alignment, TTA {tta.value}: {ours.mean():.2%} vs {theirs.mean():.2%} for {against.name}: "
                  f"{paired['only_a'] - paired['only_b']:+d} images (right only for this model on {paired['only_a']}, "
                  f"only for {against.name} on {paired['only_b']}); McNemar p = {paired['p_value']:.2f}")
    if sweep:
        rows = [[scale, shift, f"{accuracy(Framing(scale, shift), True, everything):.2%}"]
                for scale in (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3) for shift in (-0.06, -0.04, -0.02, 0.0, 0.02)]
        print_table(f"framing sweep on {split} (crop side = scale x mean box side; centre shift in crop sides)",
                    ["scale", "shift", "accuracy on faces found"], rows)


def box_centre(box) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


# ---------------------------------------------------------------- photos at several sizes

FACE_CENTRES = {"astronaut": [(222, 120)], "two_faces": [(222, 120), (799, 120)], "grace_hopper": [(268, 226)],
                "china": [], "flower": []}
SIDES = (640, 1600, 4000)  # longest side: about 0.3, 2 and 12 megapixels at 4:3


def photo_set(folder: Path, data: str) -> list[tuple[Path, list[tuple[float, float]]]]:
    """(JPEG, face centres) at each size: the example photos, matplotlib's Grace Hopper, face-free photos and
    planted scenes, all written once as the JPEGs a camera would."""
    sources = {name: (photo, FACE_CENTRES[name]) for name, photo in sample_photos().items()}
    chosen = load_dataset(DataConfig(root=data)).split("val")
    rng = np.random.default_rng(1)
    for i in range(4):
        scene = plant(chosen.images[i, 0].numpy(), 0, rng, textures())
        sources[f"planted_{i}"] = (Image.fromarray(scene.image), [scene.center])
    out = []
    for name, (image, centres) in sources.items():
        for side in SIDES:
            factor = side / max(image.size)
            resized = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
            path = folder / f"{name}_{side}.jpg"
            resized.save(path, quality=90)
            out.append((path, [(x * factor, y * factor) for x, y in centres]))
    return out


def detectors_on_photos(data: str, repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        photos = photo_set(Path(tmp), data)
        ways = {"Haar, full resolution (old default)": (Haar(detect_size=10_000, min_size=40), 4096),
                f"Haar at {DETECT_SIZE} px": (Haar(detect_size=DETECT_SIZE), 2 * DETECT_SIZE),
                f"YuNet at {DETECT_SIZE} px (default)": (YuNet(detect_size=DETECT_SIZE, min_score=MIN_SCORE), 2 * DETECT_SIZE)}
        rows = []
        for side in SIDES:
            subset = [(p, c) for p, c in photos if p.stem.endswith(f"_{side}")]
            for name, (detector, decode_side) in ways.items():
                found = extra = 0
                times = []
                for path, centres in subset:
                    for _ in range(repeats):
                        start = time.perf_counter()
                        detections = detector.detect(read_photo(path, gray=False, max_side=decode_side).pixels)
                        times.append(time.perf_counter() - start)
                    scale = max(Image.open(path).size) / max(read_photo(path, gray=False, max_side=decode_side).pixels.shape)
                    hit = [any(math.dist(box_centre([v * scale for v in d.box]), c) < d.box[2] * scale for d in detections)
                           for c in centres]
                    found += sum(hit)
                    extra += len(detections) - sum(hit)
                total = sum(len(c) for _, c in subset)
                rows.append([f"{side} px", name, f"{found}/{total}", extra, f"{statistics.median(times) * 1000:.0f} ms"])
        print_table(f"detectors on {len(photos) // len(SIDES)} photos x {len(SIDES)} sizes (decode + detect, median of "
                    f"{repeats}); {machine()}", ["longest side", "detector", "faces found", "extra boxes", "time / photo"], rows)


# ---------------------------------------------------------------- photos stored turned


def stored_turned(image: np.ndarray, centres: list[tuple[float, float]], turns: int):
    """The photo as a camera without an EXIF tag would store it: turned clockwise by turns x 90 degrees, and
    where its face centres land (turning it back, np.rot90(stored, turns), gives the upright photo)."""
    stored = np.ascontiguousarray(np.rot90(image, -turns))
    size = (stored.shape[1], stored.shape[0])
    return stored, [Detection((x, y, 0.0, 0.0), None).turned_back(turns, size).box[:2] for x, y in centres]


def faces_at(record: dict, centres: list[tuple[float, float]]) -> list[dict | None]:
    """For each centre, the reported face whose box holds it (None: missed)."""
    def holds(box, c):
        x, y, w, h = box
        return x <= c[0] <= x + w and y <= c[1] <= y + h
    return [next((f for f in record["faces"] if holds(f["box"], c)), None) for c in centres]


def turned_photos(split: str, count: int, data: str, repeats: int = 3) -> None:
    chosen = load_dataset(DataConfig(root=data)).split(split)
    rng = np.random.default_rng(2)
    picks = rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)
    photos = textures()
    scenes = [plant(chosen.images[i, 0].numpy(), int(chosen.labels[i]), rng, photos) for i in picks]
    classes = open_classifier().classes
    analyzer = FaceAnalyzer()
    direct = analyzer.classifier.probabilities(chosen.images[picks, 0].numpy(), tta=TTA.flip).argmax(1)
    rows = []
    for orient in (False, True):
        for turns in range(4):
            found = right = right_turn = 0
            for scene, direct_label in zip(scenes, direct):
                stored, (centre,) = stored_turned(scene.image, [scene.center], turns)
                record = analyzer.predict(stored, orient=orient)
                (face,) = faces_at(record, [centre])
                if face is not None:
                    found += 1
                    right += classes.index(face["label"]) == scene.label
                    right_turn += record["turned"] == 90 * turns
            rows.append(["search (default)" if orient else "--no-orient", f"{90 * turns}", f"{found / len(scenes):.1%}",
                         f"{right_turn / max(found, 1):.1%}", f"{right / max(found, 1):.2%}"])
    direct_right = float((direct == np.array([s.label for s in scenes])).mean())
    print_table(f"{len(scenes)} planted {split} faces, the scene stored turned clockwise (direct on the 48x48 crops, "
                f"TTA flip: {direct_right:.2%})", ["faces", "stored turned", "found", "read in the upright turn",
                                                   "expression right (of found)"], rows)

    samples = sample_photos()
    rows = []
    for name in ("astronaut", "two_faces", "grace_hopper"):
        image = np.asarray(samples[name].convert("RGB"))
        for orient in (False, True):
            cells = []
            for turns in range(4):
                stored, centres = stored_turned(image, FACE_CENTRES[name], turns)
                record = analyzer.predict(stored, orient=orient)
                cells.append(" ".join(f["label"] if f else "missed" for f in faces_at(record, centres))
                             + f" ({record['turned']})")
            rows.append([name, "search" if orient else "--no-orient", *cells])
    print_table("sample photos stored turned: labels (the turn fer read them in)", ["photo", "faces",
                *(f"stored {90 * t}" for t in range(4))], rows)

    free = [np.asarray(samples[name].convert("RGB")) for name in ("china", "flower")]
    free += [background(rng, int(w), int(w) * 3 // 4, photos) for w in rng.choice([640, 1024, 1600], size=98)]
    rows = []
    for orient in (False, True):
        phantoms = sum(len(analyzer.predict(np.ascontiguousarray(np.rot90(image, -turns)), orient=orient)["faces"])
                       for image in free for turns in range(4))
        rows.append(["search (default)" if orient else "--no-orient", f"{phantoms} in {4 * len(free)} photos"])
    print_table(f"phantom faces: {len(free)} face-free photos (2 sample photos, {len(free) - 2} scenes), each stored "
                "at 4 turns", ["faces", "faces reported"], rows)

    rows = []
    for name, image in (("astronaut (a face scoring 0.93: no search)", np.asarray(samples["astronaut"].convert("RGB"))),
                        ("china (no face: 3 more detector runs)", free[0])):
        times = {}
        for orient in (False, True):
            analyzer.predict(image, orient=orient)
            times[orient] = statistics.median(timed(lambda: analyzer.predict(image, orient=orient)) for _ in range(repeats * 5))
        rows.append([name, f"{image.shape[1]}x{image.shape[0]}", f"{times[False] * 1000:.0f} ms",
                     f"{times[True] * 1000:.0f} ms"])
    print_table(f"time per photo (detect + crop + classify, decoded already; median of {repeats * 5}); {machine()}",
                ["photo", "size", "--no-orient", "search (default)"], rows)


# ---------------------------------------------------------------- group photos: many small faces


def group_scene(faces: list[np.ndarray], rng: np.random.Generator, photos: list[np.ndarray], size=(4000, 3000),
                margin: float = 1.0):
    """A 12-megapixel scene with ``faces`` planted on a jittered grid, each face 40-160 px a side (log-uniform), and
    the same scene without them. ``faces``: square gray crops, or RGB head-and-shoulders squares whose face spans
    1/``margin`` of the side. Returns (scene, empty scene, [(centre, face side)])."""
    width, height = size
    empty = background(rng, width, height, photos)
    image, placed = empty.copy(), []
    cells = rng.choice(8 * 5, size=len(faces), replace=False)
    for face, cell in zip(faces, cells):
        side = int(round(math.exp(rng.uniform(math.log(40), math.log(160)))))
        square = int(side * margin)
        col, row = cell % 8, cell // 8
        x0 = int(col * width / 8 + rng.integers(0, width // 8 - square))
        y0 = int(row * height / 5 + rng.integers(0, height // 5 - square))
        pasted = cv2.resize(face, (square, square), interpolation=cv2.INTER_AREA if square < face.shape[0] else cv2.INTER_CUBIC)
        image[y0 : y0 + square, x0 : x0 + square] = pasted if pasted.ndim == 3 else pasted[:, :, None]
        placed.append(((x0 + square / 2, y0 + square / 2), side))
    return image, empty, placed


HEAD_MARGIN = 2.5  # a head-and-shoulders square is this many face sides across


def sample_heads(analyzer: FaceAnalyzer) -> list[tuple[np.ndarray, str]]:
    """Each face of the sample photos as a head-and-shoulders RGB square (face centred, HEAD_MARGIN face sides across)
    and the label fer gives it in the full photo."""
    heads = []
    for name in ("astronaut", "two_faces", "grace_hopper"):
        photo = np.asarray(sample_photos()[name].convert("RGB"))
        for face in analyzer.predict(photo)["faces"]:
            x, y, w, h = face["box"]
            half = int(HEAD_MARGIN * max(w, h) / 2)
            cx, cy = x + w // 2, y + h // 2
            padded = cv2.copyMakeBorder(photo, half, half, half, half, cv2.BORDER_REPLICATE)
            heads.append((padded[cy : cy + 2 * half, cx : cx + 2 * half], face["label"]))
    return heads


def group_photos(split: str, scenes: int, data: str) -> None:
    chosen = load_dataset(DataConfig(root=data)).split(split)
    rng = np.random.default_rng(4)
    photos = textures()
    analyzers = {"640 px only (small_faces=False)": FaceAnalyzer(small_faces=False),
                 "640 px + closer look (default)": FaceAnalyzer()}
    classes = analyzers["640 px + closer look (default)"].classifier.classes
    stats = {name: {"found": [], "right": [], "agree": [], "phantoms": 0, "free_phantoms": 0, "times": []}
             for name in analyzers}
    heads = sample_heads(analyzers["640 px + closer look (default)"])
    head_stats = {name: {"found": [], "agree": [], "phantoms": 0} for name in analyzers}
    sides_all, head_sides = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(scenes):
            chosen_heads = [heads[i] for i in rng.integers(len(heads), size=12)]
            image, _empty, placed = group_scene([h for h, _ in chosen_heads], rng, photos, margin=HEAD_MARGIN)
            path = Path(tmp) / f"heads{s}.jpg"
            Image.fromarray(image).save(path, quality=90)
            head_sides += [side for _, side in placed]
            for name, analyzer in analyzers.items():
                record = analyzer.predict(path)
                hits = faces_at(record, [c for c, _ in placed])
                head_stats[name]["found"] += [face is not None for face in hits]
                head_stats[name]["agree"] += [face is not None and face["label"] == label
                                              for face, (_, label) in zip(hits, chosen_heads)]
                head_stats[name]["phantoms"] += len(record["faces"]) - sum(h is not None for h in hits)
            picks = rng.choice(len(chosen), size=12, replace=False)
            image, empty, placed = group_scene([chosen.images[i, 0].numpy() for i in picks], rng, photos)
            direct = analyzers["640 px + closer look (default)"].classifier.probabilities(
                chosen.images[picks, 0].numpy(), tta=TTA.flip).argmax(1)
            path, free = Path(tmp) / f"group{s}.jpg", Path(tmp) / f"free{s}.jpg"
            Image.fromarray(image).save(path, quality=90)
            Image.fromarray(empty).save(free, quality=90)
            sides_all += [side for _, side in placed]
            for name, analyzer in analyzers.items():
                start = time.perf_counter()
                record = analyzer.predict(path)
                stats[name]["times"].append(time.perf_counter() - start)
                hits = faces_at(record, [c for c, _ in placed])
                for face, i, d in zip(hits, picks, direct):
                    stats[name]["found"].append(face is not None)
                    stats[name]["right"].append(face is not None and classes.index(face["label"]) == int(chosen.labels[i]))
                    stats[name]["agree"].append(face is not None and classes.index(face["label"]) == int(d))
                stats[name]["phantoms"] += len(record["faces"]) - sum(h is not None for h in hits)
                stats[name]["free_phantoms"] += len(analyzer.predict(free)["faces"])
    sides = np.array(sides_all)
    rows = []
    for name, st in stats.items():
        found, right, agree = (np.array(st[k]) for k in ("found", "right", "agree"))
        cells = [f"{found[m].mean():.1%}" for m in (sides < 80, sides >= 80)]
        read = [f"{right[found].mean():.1%}", f"{agree[found].mean():.1%}"] if found.any() else ["-", "-"]
        rows.append([name, f"{found.mean():.1%}", *cells, *read,
                     st["phantoms"], st["free_phantoms"], f"{statistics.median(st['times']) * 1000:.0f} ms"])
    print_table(f"{scenes} group photos (4000x3000 JPEG, 12 planted {split} faces each, 40-160 px) and the same scenes "
                f"without faces; whole predict path, flip TTA; {machine()}",
                ["faces", "found", "found, < 80 px", "found, 80-160 px", "expression right (of found)",
                 "same as on the 48x48 crop", "phantoms in group photos", "phantoms in face-free photos",
                 "time / photo (median)"], rows)
    sides = np.array(head_sides)
    rows = []
    for name, st in head_stats.items():
        found, agree = np.array(st["found"]), np.array(st["agree"])
        rows.append([name, f"{found.mean():.1%}", *(f"{found[m].mean():.1%}" for m in (sides < 80, sides >= 80)),
                     f"{agree[found].mean():.1%}" if found.any() else "-", st["phantoms"]])
    print_table(f"{scenes} group photos of real faces: the {len(heads)} faces of the sample photos, head and shoulders, "
                "12 a photo, faces 40-160 px", ["faces", "found", "found, < 80 px", "found, 80-160 px",
                                                "same label as in the full photo", "phantoms"], rows)


# ---------------------------------------------------------------- occluded faces


def occluded(face: np.ndarray, kind: str) -> np.ndarray:
    """A 48x48 FER-2013 crop (the face fills it: eyes near rows 17-24, mouth near rows 32-40) with part covered."""
    out = face.copy()
    if kind == "mask":  # a light surgical mask from below the nose to the chin
        out[29:, 6:42] = 200
    elif kind == "dark glasses":
        out[15:25, 5:43] = 20
    elif kind == "hand over mouth":  # a skin-grey oval over mouth and one cheek
        yy, xx = np.mgrid[:48, :48]
        out[((xx - 30) / 16) ** 2 + ((yy - 38) / 11) ** 2 <= 1] = 150
    elif kind == "left half hidden":
        out[:, :24] = 128
    return out


OCCLUSIONS = ("none", "mask", "dark glasses", "hand over mouth", "left half hidden")


def occluded_astronaut() -> None:
    """examples/astronaut.jpg with the same four coverings drawn on her face (box 178,63 90x114)."""
    from PIL import ImageDraw

    photo = sample_photos()["astronaut"]
    x, y, w, h = 178, 63, 90, 114
    shapes = {"mask": ("rounded", (x + 5, y + 62, x + w - 5, y + h + 8), (170, 200, 230)),
              "dark glasses": ("rectangle", (x + 8, y + 35, x + w - 8, y + 58), (15, 15, 15)),
              "hand over mouth": ("ellipse", (x + 30, y + 50, x + w + 25, y + h + 20), (205, 160, 130)),
              "left half hidden": ("rectangle", (x, y, x + w // 2, y + h), (120, 120, 120))}
    analyzer, rows = FaceAnalyzer(), []
    for kind in OCCLUSIONS:
        covered = photo.copy()
        if kind != "none":
            shape, box, colour = shapes[kind]
            draw = ImageDraw.Draw(covered)
            if shape == "rounded":
                draw.rounded_rectangle(box, 12, fill=colour)
            else:
                getattr(draw, shape)(box, fill=colour)
        faces = analyzer.predict(np.asarray(covered))["faces"]
        rows.append([kind, *(", ".join(f"{f['label']} {f['scores'][f['label']]:.0%} (detector {f['detector_score']:.2f})"
                                       for f in faces) or "no face",)])
    print_table("examples/astronaut.jpg, part of her face covered", ["covered", "fer predict"], rows)


def occluded_faces(split: str, count: int, data: str) -> None:
    occluded_astronaut()
    if count == 0:
        return
    chosen = load_dataset(DataConfig(root=data)).split(split)
    rng = np.random.default_rng(5)
    picks = rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)
    photos = textures()
    analyzer = FaceAnalyzer()
    classes = analyzer.classifier.classes
    rows = []
    for kind in OCCLUSIONS:
        scene_rng = np.random.default_rng(6)  # the same scenes, places and sizes for every kind
        found, right, confidence, confident_wrong = 0, 0, [], 0
        for i in picks:
            label = int(chosen.labels[i])
            scene = plant(occluded(chosen.images[i, 0].numpy(), kind), label, scene_rng, photos)
            (face,) = faces_at(analyzer.predict(scene.image), [scene.center])
            if face is None:
                continue
            found += 1
            top = face["scores"][face["label"]]
            confidence.append(top)
            right += classes.index(face["label"]) == label
            confident_wrong += classes.index(face["label"]) != label and top >= 0.7
        rows.append([kind, f"{found / len(picks):.1%}", f"{right / max(found, 1):.1%}",
                     f"{statistics.mean(confidence):.2f}" if confidence else "-", f"{confident_wrong / max(found, 1):.1%}"])
    print_table(f"{len(picks)} planted {split} faces, part of each covered before planting; whole predict path, flip TTA; "
                f"{machine()}", ["covered", "found", "expression right (of found)", "mean confidence",
                                 "wrong at 70% or more (of found)"], rows)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = data_arg(__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=("val", "test"), help="val (PublicTest) to choose, test once")
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--sweep", action="store_true", help="also sweep the crop framing (choose on val only)")
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument("--skip-planted", action="store_true")
    parser.add_argument("--turned-only", action="store_true", help="only part 3: photos stored turned")
    parser.add_argument("--groups-only", action="store_true", help="only part 4: group photos")
    parser.add_argument("--groups", type=int, default=50, help="group photos in part 4")
    parser.add_argument("--occluded-only", action="store_true", help="only part 5: occluded faces")
    parser.add_argument("--model", type=Path, help="part 1's classifier (default: the shipped model)")
    parser.add_argument("--against", type=Path, help="part 1: also score this classifier on the same crops, paired")
    args = parser.parse_args()
    if args.groups_only:
        group_photos(args.split, args.groups, args.data)
        return
    if args.occluded_only:
        occluded_faces(args.split, min(args.faces, 1000), args.data)
        return
    if not args.skip_planted and not args.turned_only:
        planted_faces(args.split, args.faces, args.data, args.sweep, model=args.model, against=args.against)
    if not args.skip_photos and not args.turned_only:
        detectors_on_photos(args.data)
    if not args.skip_photos:
        turned_photos(args.split, min(args.faces, 300), args.data)
        group_photos(args.split, args.groups, args.data)
        occluded_faces(args.split, min(args.faces, 1000), args.data)


if __name__ == "__main__":
    run_benchmark(main)
