"""``fer predict --ray``: the same records, tables and video run folders as without it, from a Ray actor pool.

This process lists the inputs, skips those the --csv or --parquet file already holds, sends the rest out as tasks
(scale.tasks), and writes each result as it comes back: JSON lines or tables on stdout, rows in the tables, a run
folder per video. Ray lives in scale/on_ray.py.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict

from fercli import console
from fercli.choices import SEGMENT_S
from fercli.commands.predict import say_counts, show_result
from fercli.commands.tables import Tables, photo_rows, video_rows
from fercli.commands.video import save_video_run
from fercli.faces.media import Sampling
from fercli.faces.records import ImageResult
from fercli.scale.on_ray import cluster_cpus, connect, disconnect, run_tasks
from fercli.scale.tasks import join_segments, plan_tasks


def predict_on_ray(*, address: str, workers: int | None, photos: list[tuple[str, str]], videos: list[str], options: dict,
                   sampling: Sampling, smooth_s: float, as_json: bool, top_k: int, tables: Tables,
                   classes: tuple[str, ...], segment_s: float = SEGMENT_S) -> int:
    """Returns the exit code: 0 when every input was read, 1 when any could not be."""
    counts = {"ok": 0, "no_face": 0, "error": 0, "faces": 0}
    failures = 0
    for path, error in photos:  # listed but not there (a typo, an empty folder): no task to send
        if error:
            failures += write_photo(ImageResult(path, "error", error=error), counts, as_json, top_k, tables, classes)
    readable = [path for path, error in photos if not error]
    if not readable and not videos:
        return 1 if failures else 0
    connect(address)
    progress = None
    try:
        # A segment's task first decodes what came before it, so its tracks and smoothing start as in one pass.
        tasks = plan_tasks(readable, videos, segment_s=segment_s, warm_s=max(2.0, 5 * smooth_s))
        parts_of = Counter(task["paths"][0] for task in tasks if task["kind"] == "video")
        parts: dict[str, list[dict]] = defaultdict(list)
        workers = min(workers or cluster_cpus(), len(tasks))  # an idle actor would only hold memory
        console.info(f"Ray: {count(len(readable), 'photo')} and {count(len(videos), 'video')} on {count(workers, 'worker')}")
        progress = console.BatchProgress("inputs", len(readable) + len(videos))
        for result in run_tasks(tasks, options=options, sampling=sampling, smooth_s=smooth_s, workers=workers):
            if result["kind"] == "photos":
                results = [ImageResult.from_json(r, small) for r, small in zip(result["records"], result["too_small"])]
                for photo in results:
                    failures += write_photo(photo, counts, as_json, top_k, tables, classes)
                progress.advance(len(results), sum(len(photo.faces) for photo in results))
            else:
                video = result["video"]
                parts[video["path"]].append(video)
                if len(parts[video["path"]]) < parts_of[video["path"]]:
                    continue  # the video's other segments are still at work
                failed, faces = write_video(join_segments(parts.pop(video["path"])), as_json, tables, classes)
                failures += failed
                progress.advance(1, faces)
    finally:
        if progress is not None:
            progress.close()
        disconnect()
    if len(photos) > 1:
        say_counts(counts, len(photos))
    return 1 if failures else 0


def write_photo(result: ImageResult, counts: dict[str, int], as_json: bool, top_k: int, tables: Tables,
                classes: tuple[str, ...]) -> int:
    """Shows a photo's result as fer predict does and adds its rows; 1 when it could not be read."""
    counts[result.status] += 1
    counts["faces"] += len(result.faces)
    record = result.to_json()
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        show_result(result, top_k)
    tables.add(photo_rows(record, classes))
    return result.status == "error"


def write_video(video: dict, as_json: bool, tables: Tables, classes: tuple[str, ...]) -> tuple[int, int]:
    """A video's run folder and rows; (1 when it could not be read, faces seen in its analysed frames)."""
    if video["error"]:
        console.error(f"{video['path']}: {video['error']}")
        tables.add(video_rows(video["path"], [], classes, error=video["error"]))
        return 1, 0
    save_video_run(video=video, classes=classes, as_json=as_json)
    tables.add(video_rows(video["path"], video["frames"], classes))
    return 0, sum(len(frame["faces"]) for frame in video["frames"])


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
