"""``fer predict``: expand inputs, run the face pipeline on photos (tables or JSON lines, annotated images) and on
videos and cameras (commands/video.py)."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fercli import console
from fercli.choices import TTA, DetectorName, Faces
from fercli.errors import InputError
from fercli.faces.analyzer import FaceAnalyzer, ImageResult, min_face_advice
from fercli.faces.images import IMAGE_SUFFIXES, RAW_SUFFIXES, STDIN, is_image_path, read_image, read_photo_bytes, stdin_bytes
from fercli.runs import refuse_overwrite, write_image_atomic
from fercli.faces.urls import download, is_url
from fercli.faces.media import Sampling, is_clip, is_video_path, media_name

VIDEO_OUTPUTS = {".mp4", ".avi", ".mov", ".m4v", ".webm"}


def run_predict(*, inputs: list[str], camera: int | None, checkpoint: Path | None, as_json: bool, save: Path | None,
                overwrite: bool, top_k: int, detector: DetectorName, detect_size: int, min_score: float, faces: Faces,
                min_face: int, no_detect: bool, align: bool, orient: bool, sampling: Sampling, smooth_s: float, device_name: str,
                small_faces: bool = True, csv_file: Path | None = None,
                tta: TTA = TTA.flip) -> int:
    """Returns the exit code: 0 when every input was read, 1 when any could not be."""
    if not inputs and camera is None:
        raise InputError("give photos, videos, folders or globs to predict on, or --source N for camera N")
    if smooth_s < 0:
        raise InputError(f"--smooth {smooth_s}: give 0 (no smoothing) or a number of seconds")
    items = expand_inputs(inputs)
    videos = [path for path, error in items if not error and is_clip(path)]
    photos = [(path, error) for path, error in items if path not in videos]
    targets = plan_saves(items, save, overwrite, camera, clips=set(videos))
    if csv_file is not None:
        if csv_file.suffix.lower() != ".csv":
            raise InputError(f"--csv {csv_file}: give a file name ending in .csv")
        refuse_overwrite(csv_file, overwrite)
    analyzer = FaceAnalyzer(checkpoint, detector=None if no_detect else detector, detect_size=detect_size,
                            min_score=min_score, min_face=min_face, faces=faces, align=align, orient=orient, tta=tta,
                            small_faces=small_faces,
                            device=device_name)
    failures = predict_photos(analyzer, photos, targets, as_json, top_k, csv_file) if photos else 0
    for source in videos + ([camera] if camera is not None else []):
        from fercli.commands.video import run_video  # the video pipeline, for videos only

        try:
            run_video(source=source, analyzer=analyzer, sampling=sampling, smooth_s=smooth_s, as_json=as_json,
                      save=targets.get(str(source)), top_k=top_k)
        except InputError as exc:
            failures += 1
            console.error(str(exc))
    return 1 if failures else 0


def predict_photos(analyzer: FaceAnalyzer, items: list[tuple[str, str]], targets: dict[str, Path], as_json: bool,
                   top_k: int, csv_file: Path | None = None) -> int:
    """Tables or JSON lines per photo, then (for several) a count on stderr; returns how many could not be read."""
    counts = {"ok": 0, "no_face": 0, "error": 0, "faces": 0}
    # Results piped to a file leave the terminal silent for a big folder: a bar there instead (gone when done).
    bar = console.WorkProgress("photos", len(items)) if len(items) > 1 and not console.out.is_terminal else None
    with bar or contextlib.nullcontext(), FaceTable(csv_file, analyzer.classifier.classes) as table:
        for result in analyzer.analyze_files(items):
            counts[result.status] += 1
            counts["faces"] += len(result.faces)
            show_or_save(result, targets, as_json, top_k)
            table.add(result)
            if bar:
                bar.advance(1)
    if len(items) > 1:
        console.info(f"{len(items)} photos: {counts['ok']} with faces ({counts['faces']} faces), {counts['no_face']} "
                     f"without, {counts['error']} unreadable")
    return counts["error"]


class FaceTable:
    """--csv: one row per face, and one per photo without a face or unreadable (face left empty, error said), written
    as results come, so a big folder stopped by Ctrl-C leaves the rows done. No file: does nothing."""

    def __init__(self, path: Path | None, classes: tuple[str, ...]):
        self.path, self.classes, self.file, self.writer = path, classes, None, None

    def __enter__(self) -> FaceTable:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(["file", "status", "face", "x", "y", "w", "h", "detector_score", "label",
                                  *self.classes, "turned", "faces_under_min_face", "error"])
        return self

    def add(self, result: ImageResult) -> None:
        if self.writer is None:
            return
        for number, face in enumerate(result.faces, start=1):
            self.writer.writerow([result.path, result.status, number, *face.box, face.detector_score, face.label,
                                  *[face.scores[c] for c in self.classes], result.turned, len(result.too_small), ""])
        if not result.faces:
            self.writer.writerow([result.path, result.status, *[""] * (7 + len(self.classes)), result.turned,
                                  len(result.too_small), result.error])
        self.file.flush()

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
            console.info(f"saved {self.path}")


def show_or_save(result: ImageResult, targets: dict[str, Path], as_json: bool, top_k: int) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        show_result(result, top_k)
    if targets and result.status != "error":
        saved = save_annotated(result, targets[result.path], top_k)
        console.info(f"saved {saved}")


def expand_inputs(items: Iterable[str]) -> list[tuple[str, str]]:
    """Files, folders (recursive) and globs -> [(path, error or "")], in a stable order."""
    found: list[tuple[str, str]] = []
    for item in items:
        path = Path(item)
        if is_url(item) or item == STDIN:  # before globs: an address's "?" starts its query
            found.append((item, ""))
        elif path.is_dir():
            media = sorted(p for p in path.rglob("*") if p.is_file() and (is_image_path(p) or is_video_path(p))
                           and not is_hidden(p.relative_to(path)))
            found += [(str(p), "") for p in without_live_photo_clips(media)] or [(item, why_no_media(path))]
        elif path.exists():
            found.append((item, ""))
        elif any(ch in item for ch in "*?["):
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            found += [(p, "") for p in matches] or [(item, "pattern matches no files")]
        else:
            found.append((item, "no such file or folder"))
    return found


def is_hidden(relative: Path) -> bool:
    """A dot-file or inside a dot-folder, as file managers hide them: macOS's ._IMG_0001.JPG beside each photo copied to a
    USB drive (metadata named like a JPEG, which would count as unreadable), caches of thumbnails (.thumbnails/)."""
    return any(part.startswith(".") for part in relative.parts)


def without_live_photo_clips(media: list[Path]) -> list[Path]:
    """A folder's photos and videos, less the clips of iPhone Live Photos: IMG_0001.MOV beside IMG_0001.HEIC (or .JPG)
    is the same moment, 3 s of it, which a photo library shows as one item; a folder exported from a phone would
    otherwise give a video run folder per photo. Said on stderr; named on the command line, such a clip is read."""
    photos = {(p.parent, p.stem.lower()) for p in media if is_image_path(p)}
    clips = [p for p in media if p.suffix.lower() == ".mov" and (p.parent, p.stem.lower()) in photos]
    if clips:
        console.info(f"skipped {len(clips)} Live Photo clip{'s' * (len(clips) > 1)} (a .MOV beside the photo of the "
                     f"same name, such as {clips[0].name}); name them to include them")
    return [p for p in media if p not in set(clips)]


def why_no_media(folder: Path) -> str:
    """A folder without photos or videos: empty of them, or holding camera RAW photos only (a photographer's folder)."""
    raws = [p for p in folder.rglob("*") if p.suffix.lower() in RAW_SUFFIXES]
    if raws:
        kinds = ", ".join(sorted({p.suffix.lower() for p in raws}))
        return (f"folder holds no images or videos but {len(raws)} camera RAW photo{'s' * (len(raws) > 1)} ({kinds}), "
                "which fer does not read; use the JPEGs the camera saved beside them, or export some")
    return "folder holds no images or videos (.jpg, .png, .mp4, ...)"


def why_no_face(result: ImageResult) -> str:
    if not result.too_small:
        return "no face found (small faces: --detect-size 1280; a face crop: --no-detect)"
    return f"no face found, but {left_out(result.too_small)}"


def left_out(sides: list[int]) -> str:
    """The faces found under --min-face, and the --min-face that reads them."""
    return f"{len(sides)} smaller than --min-face {min_face_advice(sides[0], sides[-1], one=len(sides) == 1)}"


def show_result(result: ImageResult, top_k: int) -> None:
    if result.status == "error":
        console.error(f"{result.path}: {result.error}")
        return
    if result.status == "no_face":
        console.result_line(f"{result.path}: {why_no_face(result)}")
        return
    if result.turned:  # say so: the boxes are right, but the user may wonder why a sideways photo worked
        turn = {90: "90° counter-clockwise", 180: "upside down", 270: "90° clockwise"}[result.turned]
        console.info(f"{result.path}: its faces are upright with the photo turned {turn} (no EXIF orientation tag "
                     "said so); boxes are in the photo as stored; --no-orient looks upright only")
    rows = []
    for i, face in enumerate(result.faces, start=1):
        ranked = sorted(face.scores.items(), key=lambda kv: -kv[1])[:top_k]
        rows.append([i, "{},{} {}x{}".format(*face.box), *[f"{name} {p:.0%}" for name, p in ranked]])
    columns = ["face", "box (x,y w×h)", "emotion"] + [f"#{k}" for k in range(2, min(top_k, len(result.faces[0].scores)) + 1)]
    console.show(console.make_table(result.path, columns, rows))
    if result.too_small:  # a group photo at web size: the faces under --min-face are not in the table
        console.info(f"{result.path}: also {left_out(result.too_small)}")


def plan_saves(items: list[tuple[str, str]], save: Path | None, overwrite: bool, camera: int | None = None,
               clips: set[str] = frozenset()) -> dict[str, Path]:
    """Where each annotated photo or video goes (``clips``: the inputs read as videos, an animated GIF among them: they
    are saved as .mp4); refuses, before any work, to overwrite unless asked."""
    if save is None:
        return {}
    readable = [path for path, error in items if not error] + ([str(camera)] if camera is not None else [])
    as_file = save.suffix.lower() in IMAGE_SUFFIXES | VIDEO_OUTPUTS and not save.is_dir()
    if as_file and len(readable) > 1:
        raise InputError(f"--save {save}: {len(readable)} inputs need a folder, not one file")
    targets: dict[str, Path] = {}
    for path in readable:
        video = path in clips or path == str(camera)
        if as_file and video != (save.suffix.lower() in VIDEO_OUTPUTS):
            kind = "a video (.mp4, .webm or .avi)" if video else "an image (.jpg or .png)"
            raise InputError(f"--save {save}: {path} needs {kind} to be saved as")
        # a/face.jpg and b/face.jpg (or face.jpg and face.png) would share a name: number the later ones.
        stem, suffix = ("camera" if path == str(camera) else media_name(path)), ".mp4" if video else ".jpg"
        target, n = save if as_file else save / f"{stem}_fer{suffix}", 1
        while target in targets.values() and targets.get(path) != target:
            n += 1
            target = save / f"{stem}_fer-{n}{suffix}"
        targets[path] = target
    for target in targets.values():
        refuse_overwrite(target, overwrite)
    return targets


def save_annotated(result: ImageResult, target: Path, top_k: int) -> Path:
    import cv2

    from fercli.faces.draw import draw_faces

    if is_url(result.path):  # fetched again: holding every photo of a batch until it is drawn would cost more
        rgb = read_photo_bytes(download(result.path), name=result.path).pixels
    elif result.path == STDIN:
        rgb = read_photo_bytes(stdin_bytes(), name=STDIN).pixels
    else:
        rgb = read_image(Path(result.path), gray=False)
    scale = rgb.shape[1] / result.size[0] if result.size[0] else 1.0
    canvas = draw_faces(np.ascontiguousarray(rgb[:, :, ::-1]), result.faces, scale, top_k)  # OpenCV draws in BGR
    if not cv2.haveImageWriter(str(target)):
        raise InputError(f"--save {target}: OpenCV cannot write this format; use .jpg or .png")
    write_image_atomic(canvas, target)  # a folder that cannot be written: an OSError naming it, one line from the CLI
    return target
