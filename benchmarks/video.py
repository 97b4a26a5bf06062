"""`fer predict` on videos: frames per second end to end, and where the time goes.

Two 10-second, 25 frames/s test videos with one face in view (examples/astronaut.jpg panned and zoomed):
640x480 and 1280x720. End to end is the whole command (`fer predict video.mp4`: decode, detect, align,
classify, write timeline.csv, summary.json and timeline.png), also with `--save annotated.mp4` (MPEG-4 Part 2) and
`--save annotated.webm` (VP8, which browsers play). The parts
are timed in one process on the same frames: decode only, detection only (YuNet on the 640-px copy), and
crop + classify.

Usage: python benchmarks/video.py [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, machine, print_table, run_benchmark

SIZES = ((640, 480), (1280, 720))
FPS = 25


def write_video(path: Path, size: tuple[int, int], seconds: float) -> Path:
    photo = cv2.imread(str(ROOT / "examples" / "astronaut.jpg"))
    frames = int(seconds * FPS)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    for i in range(frames):
        zoom = width / 512 * (1.0 + 0.3 * i / frames)  # the photo fills the frame's width, then zooms in by 30%
        shift = 0.05 * width * np.sin(2 * np.pi * i / frames)
        turn = np.array([[zoom, 0, width / 2 - 222 * zoom + shift], [0, zoom, height / 2 - 150 * zoom]])
        # Edge pixels repeat outside the photo: a mirrored border would show a second face.
        writer.write(cv2.warpAffine(photo, turn, size, borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def end_to_end(video: Path, options: list[str], runs: int, cwd: Path) -> float:
    fer = shutil.which("fer") or f"{sys.executable} -m fercli"
    frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    times = []
    for i in range(runs):
        extra = [arg.replace("{i}", str(i)) for arg in options]
        start = time.perf_counter()
        subprocess.run([*fer.split(), "predict", str(video), *extra], check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - start)
    return frames / statistics.median(times)


def parts(video: Path) -> dict[str, float]:
    """Milliseconds per frame for decode, detect and crop + classify, each over all frames (one process)."""
    from fercli.faces.analyzer import FaceAnalyzer
    from fercli.faces.images import Photo

    capture = cv2.VideoCapture(str(video))
    start = time.perf_counter()
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr)
    decode = (time.perf_counter() - start) / len(frames)
    analyzer = FaceAnalyzer()
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    start = time.perf_counter()
    detections = [analyzer.detector.detect(f) for f in rgb]
    detect = (time.perf_counter() - start) / len(frames)
    start = time.perf_counter()
    found = [analyzer.find_faces("", Photo(f, (f.shape[1], f.shape[0]))) for f in rgb]
    find = (time.perf_counter() - start) / len(frames)
    start = time.perf_counter()
    for i in range(0, len(found), 8):
        chunk = found[i : i + 8]
        analyzer.classify([r for r, _ in chunk], [c for _, c in chunk])
    classify = (time.perf_counter() - start) / len(frames)
    faces = np.mean([len(d) for d in detections])
    return {"decode": decode * 1000, "detect": detect * 1000, "align + crop": (find - detect) * 1000,
            "classify (8 frames a batch)": classify * 1000, "faces per frame": faces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows, part_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in SIZES:
            video = write_video(tmp / f"face_{size[0]}x{size[1]}.mp4", size, args.seconds)
            plain = end_to_end(video, [], args.runs, tmp)
            saved = [end_to_end(video, ["--save", str(tmp / f"annotated_{size[0]}_{{i}}{suffix}")], args.runs, tmp)
                     for suffix in (".mp4", ".webm")]
            rows.append([f"{size[0]}x{size[1]}", f"{plain:.1f}", *(f"{fps:.1f}" for fps in saved)])
            split = parts(video)
            part_rows.append([f"{size[0]}x{size[1]}", *(f"{v:.1f}" for v in split.values())])
            (tmp / "runs").exists() and shutil.rmtree(tmp / "runs")
    print_table(f"fer predict on a {args.seconds:.0f}-second {FPS} frames/s video, one face: frames/s end to end "
                f"(median of {args.runs}; {machine()})", ["video", "fer predict", "with --save annotated.mp4", "with --save annotated.webm"], rows)
    print_table("where the time goes, ms per frame (one process, each part over all frames)",
                ["video", "decode", "detect", "align + crop", "classify (8 frames a batch)", "faces per frame"], part_rows)


if __name__ == "__main__":
    run_benchmark(main)
