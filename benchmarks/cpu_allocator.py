"""Training images/second with glibc's default allocator settings versus fer's (device.keep_freed_memory).

glibc hands large freed buffers back to the kernel, so a training step that frees and re-allocates its
activations page-faults them in again every step. Each pass runs in a fresh process (the setting cannot be
undone inside one), the two settings taking turns; figures are medians over the repeats.
Usage: python benchmarks/cpu_allocator.py [--data DIR] [--images 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

from common import data_arg, machine, print_table, run_benchmark

RECIPES = {"seed.yaml": "batch 16 (seed_cnn)", "fer2013.yaml": "batch 64 (default vgg)"}


def one_pass(config: str, images: int, data_root: str, keep: bool) -> dict:
    """In this (fresh) process: a warm-up pass, then one timed pass of fer's training loop."""
    import torch

    from fercli.model.device import tune_cpu
    from train_throughput import fer_pass

    if keep:
        tune_cpu(torch.device("cpu"), 0)
    else:
        torch.set_flush_denormal(True)  # the same as tune_cpu but for the allocator
    run = fer_pass(config, images, data_root)
    run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rate = run()
    steps = -(-images // (16 if config == "seed.yaml" else 64))
    return {"images_per_s": rate, "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps}


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--images", type=int, default=2048, help="images per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "KEEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_pass(args.child[0], args.images, args.data, args.child[1] == "keep")))
        return
    results = {(config, keep): [] for config in RECIPES for keep in ("default", "keep")}
    for _ in range(args.repeats):
        for config, keep in results:
            child = subprocess.run([sys.executable, __file__, "--data", args.data, "--images", str(args.images),
                                    "--child", config, keep], capture_output=True, text=True, check=True)
            results[config, keep].append(json.loads(child.stdout.strip().splitlines()[-1]))
    rows = []
    for config, label in RECIPES.items():
        base = statistics.median(r["images_per_s"] for r in results[config, "default"])
        for keep, name in (("default", "glibc default"), ("keep", "keep freed memory (fer)")):
            rate = statistics.median(r["images_per_s"] for r in results[config, keep])
            faults = statistics.median(r["faults_per_step"] for r in results[config, keep])
            rows.append([config, label, name, f"{rate:.0f}", f"{faults:,.0f}", f"{rate / base:.2f}x"])
    print_table(f"training throughput, median of {args.repeats} alternating fresh processes, {args.images} images each "
                f"({machine()})", ["recipe", "step", "allocator", "images/s", "minor page faults a step", "vs default"], rows)


if __name__ == "__main__":
    run_benchmark(main)
