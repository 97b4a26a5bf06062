"""Shared helpers for the benchmark scripts: timing medians and one printed table."""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013"


def run_benchmark(main) -> None:
    """Run a benchmark's main: a problem with what it was given (a missing data folder, a checkpoint of other
    classes) is one line on stderr and fer's exit code, as with the fer command, not a traceback."""
    from fercli.console import error
    from fercli.errors import FerError

    try:
        main()
    except FerError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(repeats: int = 5, n: int = 2048) -> float:
    """What this CPU sustains on the friendliest fp32 work there is: one large matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n**3 / median_time(lambda: a @ b, max(repeats, 5)) / 1e9


def gflop_per_image(model: torch.nn.Module, input_size: int, backward: bool) -> float:
    """FLOPs of one image (forward, or forward + backward), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(8, 1, input_size, input_size)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops() / 8 / 1e9


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    from fercli.console import make_table, show

    show(make_table(title, columns, rows))


def data_arg(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="FER-2013 folder (Kaggle layout)")
    return parser


def sample_photos() -> dict[str, "object"]:
    """Ordinary photos that ship with fer's dependencies, as PIL images: name -> image.

    With faces: examples/astronaut.jpg (1), examples/two_faces.jpg (2), matplotlib's grace_hopper.jpg (1);
    without: scikit-learn's china.jpg (a temple) and flower.jpg."""
    import matplotlib.cbook
    import sklearn
    from PIL import Image

    photos = {name: Image.open(ROOT / "examples" / f"{name}.jpg").convert("RGB") for name in ("astronaut", "two_faces")}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos["grace_hopper"] = Image.open(handle).convert("RGB")
    for name in ("china", "flower"):
        photos[name] = Image.open(Path(sklearn.__file__).parent / "datasets" / "images" / f"{name}.jpg").convert("RGB")
    return photos


def write_photo_folder(folder: Path, count: int = 100, megapixels=(1.0, 12.0), seed: int = 0) -> Path:
    """``count`` JPEGs of random sizes in ``megapixels``, cycling through sample_photos() (resized up)."""
    import numpy as np
    from PIL import Image

    photos = list(sample_photos().values())
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        factor = (rng.uniform(*megapixels) * 1e6 / (photo.width * photo.height)) ** 0.5
        size = (round(photo.width * factor), round(photo.height * factor))
        photo.resize(size, Image.Resampling.BILINEAR).save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder
