"""``fer predict``: expand inputs, run the face pipeline on photos (tables or JSON lines, annotated images) and on
videos and cameras (commands/video.py)."""

from __future__ import annotations

import contextlib
import glob
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fercli import console
from fercli.choices import SEGMENT_S, TTA, DetectorName, Faces
from fercli.errors import InputError
from fercli.faces.analyzer import FaceAnalyzer, ImageResult, min_face_advice
from fercli.faces.images import IMAGE_SUFFIXES, RAW_SUFFIXES, STDIN, is_image_path, read_image, read_photo_bytes, stdin_bytes
from fercli.commands.tables import Tables, photo_rows, video_rows
from fercli.runs import refuse_overwrite, write_image_atomic
from fercli.faces.urls import download, is_url
from fercli.faces.media import Sampling, is_clip, is_live, is_video_path, media_name

VIDEO_OUTPUTS = {".mp4", ".avi", ".mov", ".m4v", ".webm"}


def run_predict(*, inputs: list[str], camera: int | None, checkpoint: Path | None, as_json: bool, save: Path | None,
                overwrite: bool, top_k: int, detector: DetectorName, detect_size: int, min_score: float, faces: Faces,
                min_face: int, no_detect: bool, align: bool, orient: bool, sampling: Sampling, smooth_s: float, device_name: str,
                small_faces: bool = True, csv_file: Path | None = None, parquet: Path | None = None,
                tta: TTA = TTA.flip, ray: str | None = None, workers: int | None = None, segment_s: float = SEGMENT_S) -> int:
    """Returns the exit code: 0 when every input was read, 1 when any could not be."""
    if not inputs and camera is None:
        raise InputError("give photos, videos, folders or globs to predict on, or --source N for camera N")
    if smooth_s < 0:
        raise InputError(f"--smooth {smooth_s}: give 0 (no smoothing) or a number of seconds")
    if ray is not None and (save is not None or camera is not None):
        raise InputError("--ray analyses files and addresses into records and tables; annotated copies (--save) and "
                         "cameras are made on one machine: run those without --ray")
    items = expand_inputs(inputs)
    if ray is not None:
        refuse_on_ray([path for path, error in items if not error])
    options = {"model": None if checkpoint is None else str(checkpoint), "detector": None if no_detect else detector,
               "detect_size": detect_size, "min_score": min_score, "min_face": min_face, "faces": faces, "align": align,
               "orient": orient, "tta": tta, "small_faces": small_faces, "device": device_name}
    analyzer = FaceAnalyzer(**options)
    classes = analyzer.classifier.classes
    settings = {**{k: str(v) for k, v in options.items() if k not in ("model", "device")},
                "model": model_identity(analyzer), "fps": sampling.fps, "every": sampling.every,
                "smooth_s": smooth_s} if parquet else {}  # kept in the Parquet file, checked when it is resumed
    tables = Tables(csv_path=csv_file, parquet_path=parquet, classes=classes, overwrite=overwrite, settings=settings)
    items = skip_done(items, tables.done, csv_file or parquet)
    videos = [path for path, error in items if not error and is_clip(path)]
    photos = [(path, error) for path, error in items if path not in videos]
    targets = plan_saves(items, save, overwrite, camera, clips=set(videos))
    try:
        if ray is not None:
            from fercli.commands.predict_ray import predict_on_ray  # Ray, an optional extra, only here

            return predict_on_ray(address=ray, workers=workers, photos=photos, videos=videos, options=options,
                                  sampling=sampling, smooth_s=smooth_s, as_json=as_json, top_k=top_k, tables=tables,
                                  classes=classes, segment_s=segment_s)
        failures = predict_photos(analyzer, photos, targets, as_json, top_k, tables) if photos else 0
        for source in videos + ([camera] if camera is not None else []):
            from fercli.commands.video import run_video  # the video pipeline, for videos only

            def add_rows(frames: list[dict], path: str = str(source)) -> None:
                tables.add(video_rows(path, frames, classes))

            try:
                run_video(source=source, analyzer=analyzer, sampling=sampling, smooth_s=smooth_s, as_json=as_json,
                          save=targets.get(str(source)), top_k=top_k, on_done=add_rows if source != camera else None)
            except InputError as exc:
                failures += 1
                console.error(str(exc))
                tables.add(video_rows(str(source), [], classes, error=str(exc).removeprefix(f"{source}: ")))
        return 1 if failures else 0
    finally:
        tables.close()


def refuse_on_ray(paths: list[str]) -> None:
    """What only this machine can read: its standard input, and live streams (a worker would read one forever)."""
    if STDIN in paths:
        raise InputError("--ray: standard input (-) is read on this machine only; save it to a file, or run without --ray")
    if live := [path for path in paths if is_url(path) and is_live(path)]:
        raise InputError(f"--ray: {live[0]} is a live stream, which never ends; run streams without --ray")


def model_identity(analyzer: FaceAnalyzer) -> str:
    """The model's file name and the start of its SHA-256: a table resumed with another model would mix two."""
    import hashlib

    path = analyzer.classifier.path
    return f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def skip_done(items: list[tuple[str, str]], done: set[str], table: Path | None) -> list[tuple[str, str]]:
    """The inputs a rerun still has to do: those not in the --csv or --parquet file it goes on with."""
    if not done:
        return items
    left = [(path, error) for path, error in items if path not in done]
    console.info(f"{table} holds {len(items) - len(left)} of these inputs from before: kept, and not analysed again "
                 f"({len(left)} left; --overwrite starts it afresh)")
    return left


def predict_photos(analyzer: FaceAnalyzer, items: list[tuple[str, str]], targets: dict[str, Path], as_json: bool,
                   top_k: int, tables: Tables) -> int:
    """Tables or JSON lines per photo, then (for several) a count on stderr; returns how many could not be read."""
    counts = {"ok": 0, "no_face": 0, "error": 0, "faces": 0}
    # Results piped to a file leave the terminal silent for a big folder: a bar there instead (gone when done).
    bar = console.WorkProgress("photos", len(items)) if len(items) > 1 and not console.out.is_terminal else None
    with bar or contextlib.nullcontext():
        for result in analyzer.analyze_files(items):
            counts[result.status] += 1
            counts["faces"] += len(result.faces)
            show_or_save(result, targets, as_json, top_k)
            tables.add(photo_rows(result.to_json(), analyzer.classifier.classes))
            if bar:
                bar.advance(1)
    if len(items) > 1:
        say_counts(counts, len(items))
    return counts["error"]


def say_counts(counts: dict[str, int], photos: int) -> None:
    console.info(f"{photos} photos: {counts['ok']} with faces ({counts['faces']} faces), {counts['no_face']} "
                 f"without, {counts['error']} unreadable")


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
