"""``fer runs``: where each training run stands (epochs done, best validation accuracy, finished or not),
read from its config.yaml, metrics.csv and train.lock only, so it is instant even while a run is training."""

from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path

import yaml

from fercli import console
from fercli.errors import InputError
from fercli.runs import run_is_held


def run_status(run_dir: Path) -> dict | None:
    """None when the folder is not a training run."""
    config_file, metrics_file = run_dir / "config.yaml", run_dir / "metrics.csv"
    if not config_file.is_file():
        return None
    config = yaml.safe_load(config_file.read_text()) or {}
    rows = list(csv.DictReader(open(metrics_file))) if metrics_file.is_file() else []
    planned = int(config.get("train", {}).get("epochs", 0))
    best = max(rows, key=lambda r: float(r["val_acc"])) if rows else None
    seconds = [float(r["seconds"]) for r in rows]
    done = len(rows)
    # What an installment plan needs: the epochs left at the median epoch's pace (a first epoch or one slowed by
    # another job on the machine would sway a mean).
    minutes_left = round(statistics.median(seconds) * (planned - done) / 60, 1) if 0 < done < planned else None
    state = "finished" if done >= planned else ("not started" if done == 0 else "stopped")
    held = run_is_held(run_dir)
    if held is None:  # no train.lock to ask: config.yaml (written at the start) or last.pt (each epoch) just written
        touched = max(p.stat().st_mtime for p in (config_file, run_dir / "last.pt") if p.is_file())
        held = time.time() - touched < 600
    if done < planned and held:
        state = "running"
    return {"run": str(run_dir), "model": config.get("model", {}).get("name", "?"), "epochs_done": done,
            "epochs_planned": planned, "best_val_acc": float(best["val_acc"]) if best else None,
            "best_epoch": int(best["epoch"]) if best else None, "training_minutes": round(sum(seconds) / 60, 1),
            "minutes_left": minutes_left, "state": state,
            "resume": f"fer train --resume {run_dir}" if 0 < done < planned else ""}


def run_runs(*, projects: list[Path], as_json: bool) -> int:
    statuses = []
    for project in projects:
        if not project.is_dir():
            raise InputError(f"{project}: no such folder (give the train.project folder runs are written to, e.g. runs/train)")
        candidates = [project] + sorted(p for p in project.iterdir() if p.is_dir())
        statuses += [s for s in map(run_status, candidates) if s is not None]
    if as_json:
        print(json.dumps(statuses))
        return 0
    if not statuses:
        console.result_line(f"no training runs in {', '.join(map(str, projects))}")
        return 0
    # Rows name the run folder; the title says where they are (full paths wrapped into unreadable columns).
    rows = [[Path(s["run"]).name, s["model"], f"{s['epochs_done']}/{s['epochs_planned']}",
             "—" if s["best_val_acc"] is None else f"{s['best_val_acc']:.2%} @ {s['best_epoch']}",
             f"{s['training_minutes']:.0f}", s["state"]] for s in statuses]
    console.result_line(f"training runs in {', '.join(map(str, projects))}")
    console.show(console.make_table("", ["run", "model", "epochs", "best val acc @ epoch", "minutes", "state"], rows))
    for s in statuses:
        if s["minutes_left"] is None:
            continue
        left = (f"{s['epochs_planned'] - s['epochs_done']} epochs left, about {s['minutes_left']:.0f} min at its "
                "median epoch")
        if s["state"] == "running":
            console.result_line(f"{s['run']} is training: {left}")
        else:
            console.result_line(f"continue {s['run']}: {s['resume']} ({left})")
    return 0
