"""`fer predict --ray local` against the one-process `fer predict`: the same 500 photos and the same videos, taking turns.

Prints, per workload, the median wall time of whole commands (start-up included: Python, the model, and for Ray its
local instance and actor pool), throughput, the ratio (Ray / one process), and whether the records agree (the same
inputs, statuses and labels, boxes within a pixel; for videos, the same timeline.csv). Ray's fixed cost is the
difference on a single photo.

Photos: ``count`` JPEGs of 0.5-3 megapixels cycling through sample photos (three of five with faces; see common.py).
Videos: four 10-second 640x480 25 frames/s clips (benchmarks/video.py's), every frame analysed.

Usage: python benchmarks/ray_scale.py [--photos 500] [--videos 4] [--runs 3] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, print_table, run_benchmark, write_photo_folder
from video import write_video


def fer_command() -> list[str]:
    return (shutil.which("fer") or f"{sys.executable} -m fercli").split()


def timed_run(inputs: list[Path], extra: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    done = subprocess.run([*fer_command(), "predict", *map(str, inputs), "--json", *extra], capture_output=True,
                          text=True, cwd=cwd, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"fer predict {' '.join(extra)} failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def photo_records(stdout: str) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, stdout.splitlines()) if "frame" not in r}


def disagreements(a: dict[str, dict], b: dict[str, dict]) -> int:
    """Inputs whose statuses, labels or boxes (by more than a pixel) differ, or that one run lacks."""
    wrong = len(a.keys() ^ b.keys())
    for path in a.keys() & b.keys():
        fa, fb = a[path]["faces"], b[path]["faces"]
        same = a[path]["status"] == b[path]["status"] and [f["label"] for f in fa] == [f["label"] for f in fb]
        same = same and all(np.abs(np.subtract(x["box"], y["box"])).max() <= 1 for x, y in zip(fa, fb))
        wrong += not same
    return wrong


def timelines(cwd: Path) -> list[str]:
    """Every run folder's timeline.csv under cwd/runs/predict, by video name (run order aside)."""
    folders = sorted((cwd / "runs" / "predict").iterdir()) if (cwd / "runs" / "predict").is_dir() else []
    return sorted((folder / "timeline.csv").read_text() for folder in folders)


def compare(label: str, inputs: list[Path], units: int, unit: str, runs: int, ray_extra: list[str], work: Path) -> list:
    """Whole commands, taking turns; rows for the table and the check of records."""
    times = {"one process": [], "--ray local": []}
    outputs, lines = {}, {}
    for i in range(runs):
        for name, extra in (("one process", []), ("--ray local", ray_extra)):
            cwd = work / f"{label}-{name.strip('-').replace(' ', '_')}-{i}"
            cwd.mkdir(parents=True)
            seconds, stdout = timed_run(inputs, extra, cwd)
            times[name].append(seconds)
            outputs[name], lines[name] = stdout, timelines(cwd)
            print(f"{label}, {name}, run {i + 1}: {seconds:.1f} s", file=sys.stderr)
    single, ray = statistics.median(times["one process"]), statistics.median(times["--ray local"])
    if unit == "photos":
        agree = f"{disagreements(photo_records(outputs['one process']), photo_records(outputs['--ray local']))} differ"
    else:
        agree = "timelines identical" if lines["one process"] == lines["--ray local"] else "timelines DIFFER"
    return [[label, name, f"{t:.1f}", f"{units / t:.1f} {unit}/s", f"{single / t:.2f}", agree if name != "one process" else ""]
            for name, t in (("one process", single), ("--ray local", ray))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="Ray workers (default: the cores)")
    args = parser.parse_args()
    ray_extra = ["--ray", "local"] + (["--workers", str(args.workers)] if args.workers else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = write_photo_folder(work / "photos", count=args.photos, megapixels=(0.5, 3.0))
        (work / "videos").mkdir()
        clips = [write_video(work / "videos" / f"clip{i}.mp4", (640, 480), 10.0) for i in range(args.videos)]
        rows = compare("1 photo", [photos / "photo000.jpg"], 1, "photos", args.runs, ray_extra, work)
        rows += compare(f"{args.photos} photos", [photos], args.photos, "photos", args.runs, ray_extra, work)
        if clips:
            rows += compare(f"{args.videos} videos", clips, 250 * args.videos, "frames", args.runs, ray_extra, work)
    from importlib.metadata import version

    print_table(f"fer predict, one process vs --ray local ({os.cpu_count()} cores; {machine()}; Ray {version('ray')}); "
                f"median of {args.runs}",
                ["workload", "run", "seconds", "throughput", "vs one process", "records"], rows)


if __name__ == "__main__":
    run_benchmark(main)
