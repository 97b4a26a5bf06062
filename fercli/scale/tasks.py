"""The work of ``fer predict --ray``, cut into tasks any process can run: photos in batches, videos one by one.

A task and its result are plain JSON, so they travel through Ray (or anything else) and are checked here without it.
A task never fails as a whole: a photo or video that cannot be read, or that fer fails on, is a record with its
error, so one bad file in ten million costs that file only.
"""

from __future__ import annotations

import time
import traceback

from fercli.errors import FerError
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.media import Sampling
from fercli.faces.records import ImageResult

PHOTOS_PER_TASK = 16  # enough to share classifier calls; small enough that a lost worker redoes little


def plan_tasks(photos: list[str], videos: list[str], *, per_task: int = PHOTOS_PER_TASK) -> list[dict]:
    """Videos first (the longest work should start first, not hold up the end), then photos in batches."""
    tasks = [{"kind": "video", "paths": [path]} for path in videos]
    tasks += [{"kind": "photos", "paths": photos[i : i + per_task]} for i in range(0, len(photos), per_task)]
    return tasks


def run_task(analyzer: FaceAnalyzer, task: dict, *, sampling: Sampling, smooth_s: float) -> dict:
    """A task -> {"kind", "records", "too_small"} for photos (``fer predict --json``'s records, in order, and the sides
    of the faces each left out under min_face) or {"kind", "video"}."""
    if task["kind"] == "photos":
        results = analyze_photos(analyzer, task["paths"])
        return {"kind": "photos", "records": [result.to_json() for result in results],
                "too_small": [result.too_small for result in results]}
    return {"kind": "video", "video": analyze_video_file(analyzer, task["paths"][0], sampling=sampling, smooth_s=smooth_s)}


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


def analyze_video_file(analyzer: FaceAnalyzer, path: str, *, sampling: Sampling, smooth_s: float) -> dict:
    """A whole video -> its analysed frames' records (``FrameResult.to_json``, with "too_small": the sides of faces
    left out) and what its run folder's summary needs; or {"path", "error"}."""
    from fercli.faces.video import analyze_video, open_clip

    start = time.perf_counter()
    try:
        video = open_clip(path, sampling)
    except Exception as exc:  # noqa: BLE001
        return {"path": path, "error": failed(exc).removeprefix(f"{path}: ")}
    try:
        frames = [{**result.to_json(path), "too_small": result.too_small}
                  for result in analyze_video(analyzer, video, smooth_s) if result.frame.analyse]
    except Exception as exc:  # noqa: BLE001
        return {"path": path, "error": failed(exc).removeprefix(f"{path}: ")}
    finally:
        video.close()
    info = video.info
    return {"path": path, "error": "", "fps": info.fps, "width": info.width, "height": info.height,
            "frames_claimed": info.frames, "decoded": video.decoded, "damaged": video.damaged,
            "seconds": time.perf_counter() - start, "frames": frames}


def failed(exc: Exception) -> str:
    """fer's own errors say what is wrong already; anything else is a bug in fer, said with where it happened."""
    if isinstance(exc, FerError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"fer failed on it ({type(exc).__name__}: {exc}, at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
