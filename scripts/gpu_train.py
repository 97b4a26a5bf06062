#!/usr/bin/env python3
"""On a lent GPU, in one call: the seed recipe to the end and four ensemble members of configs/fer2013_gpu.yaml.

All five `fer train` runs start at once on the one card (each with a share of the CPU cores); at
--minutes the ones still going get Ctrl-C (each keeps its last finished epoch). Then each run's best.pt
(at most 16 MB) is copied to OUT/<run>.pt, and OUT/summary.json records every run's state, epochs,
best PublicTest accuracy and metrics rows: 6 files, inside the device tool's 8-file limit.

    python3 scripts/gpu_train.py OUT --data FER2013_DIR [--minutes 8]
    python3 scripts/gpu_train.py OUT --dry-run      # the same on CPU, on tiny synthetic data, 2 epochs each

FER-2013 does not travel with the working tree by itself: prepare it here with
`python3 scripts/gpu_train.py .gpu-data --pack --data ../shared/data/fer2013` and name .gpu-data in the
call's carry. The pack is one file, .gpu-data/fer2013.pack: train/ and the PublicTest half of test/ as
their JPEG bytes, with the 328-byte header every Kaggle JPEG shares stored once (42 MB instead of 52 MB
of files), because the device tool carries 64 MiB in all, the checkout's 20 MB included. The GPU side
writes the files back byte for byte before training.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"seed": ("configs/seed.yaml", []),
        **{f"member{s}": ("configs/fer2013_gpu.yaml", [f"train.seed={s}"]) for s in range(4)}}
MAX_BYTES = 16 * 1024 * 1024


PACK_NAME = "fer2013.pack"


def pack(folder: Path, data: Path) -> Path:
    """train/ and test/*/PublicTest_* (no PrivateTest: evaluate that here, once) as ``folder/fer2013.pack``:
    a JSON index line (the shared header's length, then each file's path and length), the header, then each
    file's bytes after the header (or whole, when it does not start with the header)."""
    paths = [p for p in sorted(data.glob("*/*/*.jpg")) if p.parts[-3] == "train" or p.name.startswith("PublicTest_")]
    blobs = [p.read_bytes() for p in paths]
    header = os.path.commonprefix(blobs[:1000]) if blobs else b""
    parts, index = [header], []
    for path, blob in zip(paths, blobs):
        shared = blob.startswith(header)
        parts.append(blob[len(header):] if shared else blob)
        index.append([path.relative_to(data).as_posix(), len(parts[-1]), shared])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PACK_NAME
    with open(target, "wb") as handle:
        handle.write(json.dumps({"header": len(header), "files": index}).encode() + b"\n")
        for part in parts:
            handle.write(part)
    print(f"packed {len(paths):,} files of {data} into {target}: {target.stat().st_size / 1e6:.1f} MB "
          f"(the files: {sum(map(len, blobs)) / 1e6:.1f} MB)")
    return target


def unpack(pack_file: Path, folder: Path) -> Path:
    """The files of ``pack_file`` written back, byte for byte, under ``folder``."""
    with open(pack_file, "rb") as handle:
        index = json.loads(handle.readline())
        header = handle.read(index["header"])
        for name, size, shared in index["files"]:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((header if shared else b"") + handle.read(size))
    return folder


def tiny_data(folder: Path) -> Path:
    """The test suite's synthetic FER-2013 layout: a dry run needs no real data."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_fer_folders

    return write_fer_folders(folder / "fer2013", per_class=(16, 4, 4))


def launch(name: str, config: str, extra: list[str], data: Path, project: Path, threads: int, dry_run: bool):
    overrides = [f"data.root={data}", f"train.project={project}", f"train.name={name}", f"runtime.threads={threads}",
                 f"data.cache_dir={project / 'cache'}", *extra]
    if dry_run:
        overrides += ["train.epochs=2", "train.batch_size=16", "train.eval_batch_size=64"]
    log = open(project / f"{name}.log", "w")
    command = [sys.executable, "-m", "fercli", "train", "--config", str(ROOT / config), *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    # SIGINT restored in the child: a parent started in the background would hand it down ignored.
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def collect(name: str, run_dir: Path, out: Path, code: int | None, minutes: float) -> dict:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv"))) if (run_dir / "metrics.csv").is_file() else []
    best = max(rows, key=lambda r: float(r["val_acc"])) if rows else None
    record = {"run": name, "exit_code": code, "minutes": round(minutes, 2), "epochs_done": len(rows),
              "best_val_acc": float(best["val_acc"]) if best else None, "best_epoch": int(best["epoch"]) if best else None,
              "metrics": rows}
    checkpoint = run_dir / "best.pt"
    if checkpoint.is_file() and checkpoint.stat().st_size <= MAX_BYTES:
        shutil.copyfile(checkpoint, out / f"{name}.pt")
        record["checkpoint"] = f"{name}.pt"
    elif checkpoint.is_file():
        record["checkpoint"] = f"not copied: {checkpoint.stat().st_size / 1e6:.1f} MB is over 16 MB"
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu-data" / PACK_NAME,
                        help="a pack (default .gpu-data/fer2013.pack) or a FER-2013 folder; with --pack, the folder to pack")
    parser.add_argument("--minutes", type=float, default=8.0, help="stop what is still training after this long")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny synthetic data, 2 epochs per run")
    parser.add_argument("--pack", action="store_true", help="pack FER-2013 (from --data) into OUT for carrying, then stop")
    args = parser.parse_args()
    if args.pack:
        pack(args.out, args.data)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fer-gpu-"))
    data = tiny_data(work) if args.dry_run else args.data.resolve()
    if data.is_file():
        data = unpack(data, work / "fer2013")
    if not data.is_dir():
        print(f"no data at {data}: pack it first (see --help)", file=sys.stderr)
        return 1
    threads = max(1, (os.cpu_count() or 2) // len(RUNS))
    start = time.time()
    procs = {name: launch(name, config, extra, data, work, threads, args.dry_run) for name, (config, extra) in RUNS.items()}
    ended: dict[str, float] = {}
    while len(ended) < len(procs) and time.time() - start < args.minutes * 60:
        for name, proc in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = (time.time() - start) / 60
                print(f"{name}: exit {proc.returncode} after {ended[name]:.1f} min", flush=True)
        time.sleep(2)
    for name, proc in procs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fer keeps the last finished epoch
    for name, proc in procs.items():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        ended.setdefault(name, (time.time() - start) / 60)
    records = [collect(name, work / name, args.out, procs[name].returncode, ended[name]) for name in procs]
    summary = {"minutes": round((time.time() - start) / 60, 2), "dry_run": args.dry_run, "runs": records,
               "logs_tail": {name: (work / f"{name}.log").read_text()[-1500:] for name in procs}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    for r in records:
        print(f"{r['run']}: {r['epochs_done']} epochs, best val {r['best_val_acc']}, {r.get('checkpoint', 'no checkpoint')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
