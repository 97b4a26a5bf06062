"""`fer predict <photo>` end to end (process start to exit) and its parts; batched faces/second.

Usage: python benchmarks/predict_latency.py [--photo examples/astronaut.jpg] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from common import ROOT, machine, median_time, print_table

PARTS = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from pathlib import Path
from fercli.checkpoint import default_checkpoint, load_model
from fercli.predict import FaceDetector, Predictor
from fercli.images import read_image
t1 = time.perf_counter()
loaded = load_model(default_checkpoint(), torch.device("cpu"))
detector = FaceDetector()
t2 = time.perf_counter()
gray = read_image(Path(sys.argv[1]), gray=True)
boxes = detector.detect(gray)
t3 = time.perf_counter()
predictor = Predictor(loaded, torch.device("cpu"), detector)
result, _ = next(predictor.run([(sys.argv[1], "")]))
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "model load": t2 - t1, "read + detect": t3 - t2, "crop + classify": t4 - t3}))
"""


def end_to_end(photo: str, runs: int) -> list[float]:
    fer = shutil.which("fer") or f"{sys.executable} -m fercli"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*fer.split(), "predict", photo], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def parts(photo: str, runs: int) -> dict[str, float]:
    samples = [json.loads(subprocess.run([sys.executable, "-c", PARTS, photo], check=True, capture_output=True,
                                         text=True).stdout) for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def faces_per_second(batch: int, repeats: int = 7) -> float:
    import numpy as np
    import torch

    from fercli.checkpoint import default_checkpoint, load_model
    from fercli.predict import Predictor

    predictor = Predictor(load_model(default_checkpoint(), torch.device("cpu")), torch.device("cpu"), None)
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    predictor.probabilities(crops)  # warm-up
    calls = max(1, 256 // batch)
    seconds = median_time(lambda: [predictor.probabilities(crops) for _ in range(calls)], repeats)
    return batch * calls / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photo", default=str(ROOT / "examples" / "astronaut.jpg"))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    help_times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fercli", "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - start)
    e2e = end_to_end(args.photo, args.runs)
    rows = [["fer --help", f"{statistics.median(help_times):.3f}"],
            ["fer predict (end to end)", f"{statistics.median(e2e):.3f}"]]
    rows += [[f"  {name}", f"{seconds:.3f}"] for name, seconds in parts(args.photo, args.runs).items()]
    print_table(f"latency in seconds, median of {args.runs} runs ({machine()})", ["step", "seconds"], rows)
    rates = [[batch, f"{faces_per_second(batch):,.0f}"] for batch in (1, 32, 256)]
    print_table("default classifier throughput (48x48 crops, CPU)", ["batch", "faces/s"], rates)


if __name__ == "__main__":
    main()
