"""The work of ``fer predict --ray``, cut into tasks any process can run: photos in batches, videos one by one.

A task and its result are plain JSON, so they travel through Ray (or anything else) and are checked here without it.
A task never fails as a whole: a photo or video that cannot be read, or that fer fails on, is a record with its
error, so one bad file in ten million costs that file only.
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path

from fercli.errors import FerError
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.media import Sampling
from fercli.faces.records import ImageResult
from fercli.faces.urls import is_url

PHOTOS_PER_TASK = 16  # enough to share classifier calls; small enough that a lost worker redoes little


def plan_tasks(photos: list[str], videos: list[str], *, per_task: int = PHOTOS_PER_TASK, segment_s: float = 0.0,
               warm_s: float = 0.0) -> list[dict]:
    """Videos first (the longest work should start first, not hold up the end), then photos in batches. With
    ``segment_s``, a video file longer than two segments is cut into segments of that many seconds, each task also
    decoding the ``warm_s`` seconds before its segment (see ``segments``)."""
    tasks = [{"kind": "video", "paths": [path], "segment": segment}
             for path in videos for segment in segments(path, segment_s, warm_s)]
    tasks += [{"kind": "photos", "paths": photos[i : i + per_task]} for i in range(0, len(photos), per_task)]
    return tasks


def segments(path: str, segment_s: float, warm_s: float) -> list[list[int] | None]:
    """[warm, start, stop] frame indexes of each segment of a video file, or [None] (the whole video, one task).

    A segment's task analyses from ``warm`` on and keeps what it finds from ``start``: its tracker and smoothing
    have then seen ``warm_s`` seconds, so its first frames read as they do in one pass over the whole video (the
    smoothing's start weighs exp(-warm_s / smooth_s)), and its faces are matched to the previous segment's on the
    last frame both analysed (join_segments)."""
    import cv2

    if segment_s <= 0 or is_url(path) or not Path(path).is_file():
        return [None]
    capture = cv2.VideoCapture(path)
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    if not 0 < fps < 1000 or frames <= 0:
        return [None]
    length = max(1, round(segment_s * fps))
    if frames <= 2 * length:
        return [None]
    warm = math.ceil(warm_s * fps)
    starts = list(range(0, frames, length))
    # The last runs to the end: a container's frame count can be short by one.
    return [[max(0, start - warm), start, start + length if start != starts[-1] else None] for start in starts]


def run_task(analyzer: FaceAnalyzer, task: dict, *, sampling: Sampling, smooth_s: float) -> dict:
    """A task -> {"kind", "records", "too_small"} for photos (``fer predict --json``'s records, in order, and the sides
    of the faces each left out under min_face) or {"kind", "video"}."""
    if task["kind"] == "photos":
        results = analyze_photos(analyzer, task["paths"])
        return {"kind": "photos", "records": [result.to_json() for result in results],
                "too_small": [result.too_small for result in results]}
    return {"kind": "video", "video": analyze_video_file(analyzer, task["paths"][0], sampling=sampling, smooth_s=smooth_s,
                                                         segment=task.get("segment"))}


def analyze_photos(analyzer: FaceAnalyzer, paths: list[str]) -> list[ImageResult]:
    try:
        return list(analyzer.analyze_files([(path, "") for path in paths]))
    except Exception:  # noqa: BLE001 (one photo broke the batch: find it, keep the others)
        return [one_photo(analyzer, path) for path in paths]


def one_photo(analyzer: FaceAnalyzer, path: str) -> ImageResult:
    try:
        return next(analyzer.analyze_files([(path, "")]))
    except Exception as exc:  # noqa: BLE001
        return ImageResult(path, "error", error=failed(exc))


def analyze_video_file(analyzer: FaceAnalyzer, path: str, *, sampling: Sampling, smooth_s: float,
                       segment: list[int | None] | None = None) -> dict:
    """A video, or a segment of it -> its analysed frames' records (``FrameResult.to_json``, with "too_small": the
    sides of faces left out) and what its run folder's summary needs; or {"path", "error"}. A segment's result also
    holds "boundary": the last frame it analysed before its own (None at the video's start)."""
    from fercli.faces.video import analyze_video, open_clip

    began = time.perf_counter()
    warm, start, stop = segment or (0, 0, None)
    try:
        video = open_clip(path, sampling, start=warm, stop=stop)
    except Exception as exc:  # noqa: BLE001
        return {"path": path, "error": failed(exc).removeprefix(f"{path}: "), "segment": segment}
    try:
        analysed = [{**result.to_json(path), "too_small": result.too_small}
                    for result in analyze_video(analyzer, video, smooth_s) if result.frame.analyse]
    except Exception as exc:  # noqa: BLE001
        return {"path": path, "error": failed(exc).removeprefix(f"{path}: "), "segment": segment}
    finally:
        video.close()
    before = [frame for frame in analysed if frame["frame"] < start]
    info = video.info
    return {"path": path, "error": "", "fps": info.fps, "width": info.width, "height": info.height,
            "frames_claimed": info.frames, "decoded": video.decoded, "damaged": video.damaged,
            "seconds": time.perf_counter() - began, "frames": [frame for frame in analysed if frame["frame"] >= start],
            "segment": segment, "boundary": before[-1] if before else None}


def join_segments(parts: list[dict]) -> dict:
    """A video's segment results -> the result of the whole video, its face ids as one pass gives them: a face in
    a segment's boundary frame continues the previous segment's face with the same box there (both analysed that
    frame alike); the others get the next new ids, in the order they appeared."""
    if errors := [part for part in parts if part["error"]]:
        return errors[0]
    if len(parts) == 1:
        return parts[0]  # a video analysed whole
    parts = sorted(parts, key=lambda part: part["segment"][1])
    whole = {**parts[0], "frames": [], "seconds": sum(part["seconds"] for part in parts),
             "decoded": max(part["decoded"] for part in parts), "damaged": any(part["damaged"] for part in parts)}
    next_id, previous = 1, {}
    for part in parts:
        ids: dict[int, int] = {}
        if part["boundary"] is not None:
            theirs = {tuple(face["box"]): previous.get((part["boundary"]["frame"], tuple(face["box"])))
                      for face in part["boundary"]["faces"]}
            ids = {face["face_id"]: theirs[tuple(face["box"])] for face in part["boundary"]["faces"]
                   if theirs[tuple(face["box"])] is not None}
        for frame in part["frames"]:
            for face in frame["faces"]:
                if face["face_id"] not in ids:
                    ids[face["face_id"]], next_id = next_id, next_id + 1
                face["face_id"] = ids[face["face_id"]]
                previous[(frame["frame"], tuple(face["box"]))] = face["face_id"]
        whole["frames"] += part["frames"]
    return whole


def failed(exc: Exception) -> str:
    """fer's own errors say what is wrong already; anything else is a bug in fer, said with where it happened."""
    if isinstance(exc, FerError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"fer failed on it ({type(exc).__name__}: {exc}, at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
