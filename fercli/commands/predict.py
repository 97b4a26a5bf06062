"""``fer predict``: expand inputs, run the face pipeline, print tables or JSON lines, save annotated images."""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fercli import console
from fercli.choices import DetectorName, Faces
from fercli.errors import InputError
from fercli.faces import FaceAnalyzer, ImageResult
from fercli.images import IMAGE_SUFFIXES, is_image_path, read_image
from fercli.runs import refuse_overwrite


def run_predict(inputs: list[str], *, checkpoint: Path | None, as_json: bool, save: Path | None, overwrite: bool,
                top_k: int, detector: DetectorName, detect_size: int, min_score: float, faces: Faces, min_face: int,
                no_detect: bool, align: bool, device_name: str) -> int:
    """Returns the exit code: 0 when every input was read, 1 when any could not be."""
    items = expand_inputs(inputs)
    targets = plan_saves(items, save, overwrite)
    analyzer = FaceAnalyzer(checkpoint, detector=None if no_detect else detector, detect_size=detect_size,
                            min_score=min_score, min_face=min_face, faces=faces, align=align, device=device_name)
    failures = 0
    for result in analyzer.analyze_files(items):
        failures += result.status == "error"
        if as_json:
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
        else:
            show_result(result, top_k)
        if targets and result.status != "error":
            saved = save_annotated(result, targets[result.path])
            console.info(f"saved {saved}")
    if failures and not as_json:
        console.warn(f"{failures} of {len(items)} input(s) could not be read")
    return 1 if failures else 0


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


def show_result(result: ImageResult, top_k: int) -> None:
    if result.status == "error":
        console.error(f"{result.path}: {result.error}")
        return
    if result.status == "no_face":
        console.result_line(f"{result.path}: no face found (small faces: --detect-size 1280; a face crop: --no-detect)")
        return
    rows = []
    for i, face in enumerate(result.faces, start=1):
        ranked = sorted(face.scores.items(), key=lambda kv: -kv[1])[:top_k]
        rows.append([i, "{},{} {}x{}".format(*face.box), *[f"{name} {p:.0%}" for name, p in ranked]])
    columns = ["face", "box (x,y w×h)", "emotion"] + [f"#{k}" for k in range(2, min(top_k, len(result.faces[0].scores)) + 1)]
    console.show(console.make_table(result.path, columns, rows))


def plan_saves(items: list[tuple[str, str]], save: Path | None, overwrite: bool) -> dict[str, Path]:
    """Where each annotated image goes; refuses, before any work, to overwrite unless asked."""
    if save is None:
        return {}
    readable = [path for path, error in items if not error]
    as_file = save.suffix.lower() in IMAGE_SUFFIXES and not save.is_dir()
    if as_file and len(readable) > 1:
        raise InputError(f"--save {save}: {len(readable)} inputs need a folder, not one file")
    targets: dict[str, Path] = {}
    for path in readable:
        # a/face.jpg and b/face.jpg (or face.jpg and face.png) would share a name: number the later ones.
        target, n = save if as_file else save / f"{Path(path).stem}_fer.jpg", 1
        while target in targets.values() and targets.get(path) != target:
            n += 1
            target = save / f"{Path(path).stem}_fer-{n}.jpg"
        targets[path] = target
    for target in targets.values():
        refuse_overwrite(target, overwrite)
    return targets


def save_annotated(result: ImageResult, target: Path) -> Path:
    import cv2

    rgb = read_image(Path(result.path), gray=False)
    scale = rgb.shape[1] / result.size[0] if result.size[0] else 1.0
    canvas = np.ascontiguousarray(rgb[:, :, ::-1])  # OpenCV draws in BGR
    thickness = max(2, round(canvas.shape[1] / 400))
    for face in result.faces:
        x, y, w, h = (int(round(v * scale)) for v in face.box)
        text = f"{face.label} {face.scores.get(face.label, 0):.0%}"
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 0), thickness)
        font_scale = max(0.5, w / 180)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(y - th - 8, 0)
        cv2.rectangle(canvas, (x, top), (x + tw + 6, top + th + 8), (0, 200, 0), -1)
        cv2.putText(canvas, text, (x + 3, top + th + 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target), canvas):
        raise InputError(f"--save {target}: OpenCV cannot write this format; use .jpg or .png")
    return target
