"""`fer predict <photo>` end to end (process start to exit) and its parts; batched faces/second.

Both forms of the shipped model side by side: the ONNX export (the default) and the PyTorch checkpoint;
for throughput also its int8 export (`fer export --int8`, calibrated on FER-2013 training images from --data).
Photos as people have them: one 12-megapixel JPEG, and a folder of 100 JPEGs of 1-12 megapixels, with YuNet
(the default) and Haar side by side.

Usage: python benchmarks/predict_latency.py [--photo examples/astronaut.jpg] [--runs 7] [--data ../shared/data/fer2013]
       [--against previous_release.onnx]   # that model timed in the same run, beside the shipped one
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    DEFAULT_DATA, ROOT, gflop_per_image, machine, matmul_gflops, print_table, run_benchmark,
    sample_photos, write_photo_folder,
)
from fercli.model.shipped import default_checkpoint

PARTS = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.images import read_photo
if sys.argv[2].endswith(".pt"):
    import torch  # the PyTorch path pays for this import; count it with the imports
t1 = time.perf_counter()
analyzer = FaceAnalyzer(sys.argv[2])
t2 = time.perf_counter()
photo = read_photo(Path(sys.argv[1]), gray=False, max_side=2 * analyzer.detect_size)
t3 = time.perf_counter()
result, crops = analyzer.find_faces(sys.argv[1], photo)
t4 = time.perf_counter()
analyzer.classify([result], [crops])
t5 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "models load": t2 - t1, "read photo": t3 - t2, "detect + align + crop": t4 - t3,
                  "classify": t5 - t4}))
"""


def end_to_end(photo: str, options: list[str], runs: int) -> list[float]:
    fer = shutil.which("fer") or f"{sys.executable} -m fercli"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*fer.split(), "predict", photo, *options], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def parts(photo: str, model: str, runs: int) -> dict[str, float]:
    samples = [json.loads(subprocess.run([sys.executable, "-c", PARTS, photo, model], check=True, capture_output=True,
                                         text=True).stdout) for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def faces_per_second(models: dict[str, Path], batch: int, repeats: int = 7) -> dict[str, float]:
    """The classifiers alone (uint8 crops in, calibrated probabilities out), no detection; taking turns, so a
    slow spell of this shared machine hits them all alike."""
    import numpy as np

    from fercli.model.classifier import open_classifier

    classifiers = {name: open_classifier(path) for name, path in models.items()}
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    calls = max(1, 256 // batch)
    times: dict[str, list[float]] = {name: [] for name in classifiers}
    for _ in range(repeats + 1):  # the first round is the warm-up
        for name, classifier in classifiers.items():
            start = time.perf_counter()
            for _ in range(calls):
                classifier.probabilities(crops)
            times[name].append(time.perf_counter() - start)
    return {name: batch * calls / statistics.median(t[1:]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photo", default=str(ROOT / "examples" / "astronaut.jpg"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="FER-2013 folder, to calibrate the int8 export")
    parser.add_argument("--against", type=Path, help="another .onnx model (say, the previous release) timed in the same "
                        "run: fer predict end to end, taking turns with the default, and its faces/s")
    args = parser.parse_args()
    help_times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fercli", "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - start)
    models = {"onnx": default_checkpoint(".onnx"), "torch": default_checkpoint(".pt")}
    options = {"onnx": [], "torch": ["-c", str(models["torch"])]}  # the default needs no option
    e2e = {name: statistics.median(end_to_end(args.photo, options[name], args.runs)) for name in models}
    split = {name: parts(args.photo, str(path), args.runs) for name, path in models.items()}
    rows = [["fer --help", f"{statistics.median(help_times):.3f}", ""],
            ["fer predict, end to end", f"{e2e['onnx']:.3f}", f"{e2e['torch']:.3f}"]]
    rows += [[f"  {part}", f"{split['onnx'][part]:.3f}", f"{split['torch'][part]:.3f}"] for part in split["onnx"]]
    title = f"latency in seconds, median of {args.runs} runs ({machine()})"
    print_table(title, ["step", "default (.onnx)", "-c fer_vgg.pt"], rows)
    print(f"end to end: the ONNX default is {e2e['torch'] / e2e['onnx']:.1f}x faster than the PyTorch checkpoint")
    if args.against:
        print(against_end_to_end(args.photo, args.against, args.runs))
    photos_end_to_end(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        engines = {"onnxruntime fp32": models["onnx"], **int8_export(models["torch"], args.data, Path(tmp)),
                   "torch fp32": models["torch"]}
        if args.against:
            engines[f"{args.against.name} fp32"] = args.against
        rates = {batch: faces_per_second(engines, batch) for batch in (1, 32, 256)}
    rows = [[batch, *(f"{rate:,.0f}" for rate in by_engine.values())] for batch, by_engine in rates.items()]
    print_table("classifier throughput, faces/s (48x48 crops, CPU, median of 7)", ["batch", *engines], rows)
    print(matmul_reference(models["torch"], rates[256]["onnxruntime fp32"]))


def against_end_to_end(photo: str, other: Path, runs: int) -> str:
    """The default and another ONNX model taking turns, so a slow spell of this shared machine hits both alike."""
    times: dict[str, list[float]] = {"default": [], "other": []}
    for _ in range(runs):
        times["default"] += end_to_end(photo, [], 1)
        times["other"] += end_to_end(photo, ["-c", str(other)], 1)
    default, against = (statistics.median(t) for t in times.values())
    return (f"fer predict end to end, taking turns: the default {default:.3f} s, -c {other.name} {against:.3f} s "
            f"({default / against:.2f}x its time)")


def photos_end_to_end(runs: int) -> None:
    """`fer predict` on one 12-megapixel JPEG and on a folder of 100 photos of 1-12 megapixels, YuNet vs Haar.

    The folder cycles through the sample photos, two of five face-free: those pay YuNet's search of turned views."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "photo_12mp.jpg"
        upscaled = sample_photos()["astronaut"].resize((4000, 4000), Image.Resampling.BICUBIC)
        upscaled.crop((0, 500, 4000, 3500)).save(big, quality=90)
        folder = write_photo_folder(Path(tmp) / "photos")
        rows = []
        for name, options in (("YuNet (default)", []), ("YuNet, --no-small-faces", ["--no-small-faces"]),
                              ("YuNet, --no-orient (upright only)", ["--no-orient"]),
                              ("Haar", ["--detector", "haar"])):
            one = statistics.median(end_to_end(str(big), options, runs))
            many = statistics.median(end_to_end(str(folder), options, max(1, runs // 3)))
            rows.append([name, f"{one:.2f}", f"{many:.2f}"])
    print_table(f"fer predict on photos, seconds end to end (median; {machine()})",
                ["detector", "one 12-MP JPEG (4000x3000)", "folder: 100 JPEGs of 1-12 MP"], rows)


def int8_export(checkpoint: Path, data: str, folder: Path) -> dict[str, Path]:
    """The shipped model quantised by `fer export --int8`; none when FER-2013 is not there to calibrate on."""
    if not Path(data).exists():
        print(f"int8 column skipped: no calibration data at {data} (pass --data)")
        return {}
    from fercli.data.calibration import calibration_images
    from fercli.model.export import export_onnx

    return {"onnxruntime int8": export_onnx(checkpoint, folder / "int8.onnx", calibration=functools.partial(calibration_images, data=data))}


def matmul_reference(checkpoint: Path, fp32_rate: float) -> str:
    """How the fp32 classifier's arithmetic rate compares with what one large matmul reaches on this CPU.

    Not a hard ceiling: onnxruntime's convolution kernels can beat torch's 2048x2048 matmul here."""
    import torch

    from fercli.model.checkpoint import load_model

    loaded = load_model(checkpoint, torch.device("cpu"))
    gflop = gflop_per_image(loaded.model, loaded.preprocess.input_size, backward=False)
    matmul = matmul_gflops()
    return (f"arithmetic: {gflop:.3f} GFLOP per face; onnxruntime fp32 at batch 256 runs {fp32_rate * gflop:.0f} GFLOP/s, "
            f"a 2048x2048 fp32 matmul {matmul:.0f} GFLOP/s ({fp32_rate * gflop / matmul:.0%} of it); "
            f"3,000 faces/s in fp32 would take {3000 * gflop:.0f} GFLOP/s")


if __name__ == "__main__":
    run_benchmark(main)
