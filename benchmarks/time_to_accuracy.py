"""Wall time of configs/quick.yaml until PublicTest (val) accuracy first reaches a target (default 56%).

Runs `fer train` for real, then reads the run's metrics.csv. Usage:
python benchmarks/time_to_accuracy.py [--data DIR] [--target 0.56] [--config configs/quick.yaml]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from common import ROOT, data_arg, machine, print_table, run_benchmark


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--target", type=float, default=0.56)
    parser.add_argument("--config", default=str(ROOT / "configs" / "quick.yaml"))
    parser.add_argument("--project", default=str(ROOT / "runs" / "benchmarks"), help="where the run folder goes (kept for fer eval)")
    args = parser.parse_args()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fercli", "train", "--config", args.config, f"data.root={args.data}",
                           f"train.project={args.project}"], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    frame = pd.read_csv(run_dir / "metrics.csv")
    frame["train_seconds"] = frame["seconds"].cumsum()
    reached = frame[frame["val_acc"] >= args.target]
    rows = [[int(r.epoch), f"{r.val_acc:.2%}", f"{r.train_seconds:.0f}"] for r in frame.itertuples()]
    print_table(f"{Path(args.config).name}: val accuracy by epoch ({machine()})", ["epoch", "val acc", "training s"], rows)
    if reached.empty:
        print(f"never reached {args.target:.0%}; best {frame['val_acc'].max():.2%}; whole run {wall:.0f} s")
    else:
        first = reached.iloc[0]
        print(f"reached {args.target:.0%} at epoch {int(first.epoch)} after {first.train_seconds:.0f} s of training "
              f"({first.train_seconds / 60:.1f} min); whole command {wall:.0f} s including data load and evaluation")
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    run_benchmark(main)
