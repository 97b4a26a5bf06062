"""Loading the whole FER-2013 dataset: first load (decode every JPEG) versus cached load.

Usage: python benchmarks/data_load.py [--data DIR] [--repeats 5]
"""

from __future__ import annotations

import tempfile
import time

from common import data_arg, machine, median_time, print_table, run_benchmark
from fercli.config import DataConfig
from fercli.data.dataset import load_dataset


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cfg = DataConfig(root=args.data, cache_dir=cache)
        start = time.perf_counter()
        data = load_dataset(cfg)
        first = time.perf_counter() - start
        cached = median_time(lambda: load_dataset(cfg), args.repeats)
    count = sum(len(s) for s in data.splits.values())
    rows = [["first load (decode + cache)", f"{first:.2f}", f"{count / first:,.0f}"],
            [f"cached load (median of {args.repeats})", f"{cached:.3f}", f"{count / cached:,.0f}"]]
    print_table(f"{count:,} images, {', '.join(f'{k} {len(v):,}' for k, v in data.splits.items())} ({machine()})",
                ["load", "seconds", "images/s"], rows)


if __name__ == "__main__":
    run_benchmark(main)
