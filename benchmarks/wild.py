"""The cross-dataset suite: how models do on labelled faces from outside FER-2013. Every release is judged on it
first (docs/release-rule.md).

The open sets of ../shared/data/wild (evaluation and model selection only: never train or calibrate on them):
tfeid and jaffe, posed portraits, through fer predict's face pipeline (largest face; a photo where no face is found
counts as wrong), and lfw_expressions, tight in-the-wild crops, as crops. Per set: accuracy, balanced accuracy (the
mean recall over the classes present) and the share of photos where a face was found; then each model's mean
balanced accuracy over the sets, the suite's headline. Models are paired against the first one (McNemar, per set
and over the suite pooled). --fer-lib-venv adds the `fer` PyPI library (run in its own environment) as a peer.
Usage:
python benchmarks/wild.py [MODEL ...] [--wild DIR] [--tta flip] [--fer-lib-venv VENV] [--json]
MODEL: a .pt or .onnx file, a shipped name (fer2013, ferplus), or REV:PATH, a file as committed at git revision REV
(701ce0a:checkpoints/fer_vgg.onnx is the release of 2026-12-06), or A+B: an ensemble of such models (probabilities
averaged; not a release candidate, two networks cost twice the time). Default: the shipped model and that release.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import ROOT, machine, print_table, run_benchmark
from fercli.choices import TTA
from fercli.errors import InputError
from fercli.evaluate.metrics import paired_comparison, with_misses
from fercli.evaluate.scoring import ensemble_probs, load_split, open_classifiers

SETS = {"tfeid": "detect", "jaffe": "detect", "lfw_expressions": "crops"}  # set -> how its images are read
RELEASE_2026_12_06 = "701ce0a:checkpoints/fer_vgg.onnx"
PEER = "fer lib"


@dataclass
class Scored:
    """One model on one set, per image in the set's file order: its source, true class name, whether a face was found
    and whether the answer was right (a photo with no face found is wrong)."""

    sources: list[str]
    truth: list[str]
    found: np.ndarray
    right: np.ndarray

    def summary(self) -> dict:
        _names, labels = np.unique(self.truth, return_inverse=True)
        return with_misses(np.where(self.right, labels, -1), labels, self.found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["fer2013", RELEASE_2026_12_06])
    parser.add_argument("--wild", type=Path, default=ROOT.parent / "shared" / "data" / "wild", help="the suite's folder")
    parser.add_argument("--tta", default="flip", choices=[t.value for t in TTA], help="fer predict's default: flip")
    parser.add_argument("--fer-lib-venv", type=Path, help="a virtual environment with the fer PyPI library installed")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, nothing else")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for spec in args.models:
            parts = [resolve_model(part, Path(tmp)) for part in split_ensemble(spec)]
            models[" + ".join(name for name, _ in parts)] = [path for _, path in parts]
        scored = {name: score_model(paths, args.wild, TTA(args.tta)) for name, paths in models.items()}
    if args.fer_lib_venv:
        scored[PEER] = score_peer(args.fer_lib_venv, next(iter(scored.values())))
    report = build_report(scored)
    if args.json:
        print(json.dumps(report))
    else:
        show(report, args.tta)


def split_ensemble(spec: str) -> list[str]:
    """A+B -> [A, B]; a file whose own name holds a + stays whole."""
    return [spec] if Path(spec).exists() else [part.strip() for part in spec.split("+")]


def resolve_model(spec: str, tmp: Path) -> tuple[str, Path]:
    """(a name for the table, a file): REV:PATH is written out of git into ``tmp``."""
    if ":" in spec and not Path(spec).exists():
        rev, inside = spec.split(":", 1)
        done = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{inside}"], capture_output=True)
        if done.returncode:
            raise InputError(f"{spec}: not in git ({done.stderr.decode().strip()}); give REV:PATH of a committed model")
        out = tmp / f"{rev}_{Path(inside).name}"
        out.write_bytes(done.stdout)
        return f"{Path(inside).stem}@{rev}", out
    path = Path(spec)
    return (f"{path.parent.name}/{path.name}" if path.name in ("best.pt", "last.pt", "swa.pt") else path.name), path


def score_model(paths: list[Path], wild: Path, tta: TTA) -> dict[str, Scored]:
    _paths, models = open_classifiers(paths, torch.device("cpu"))
    per_set = {}
    for name, faces in SETS.items():
        split, dataset = load_split(str(wild / name), models, "all", faces=faces)
        probs = ensemble_probs(models, split.images, tta)
        labels = split.labels.numpy()
        found = np.ones(len(labels), dtype=bool) if split.found is None else split.found.numpy()
        classes = models[0].classes
        per_set[name] = Scored(split.sources, [classes[i] for i in labels], found, (probs.argmax(1) == labels) & found)
    return per_set


def score_peer(venv: Path, reference: dict[str, Scored]) -> dict[str, Scored]:
    """The fer PyPI library on the same images, in its own environment (it needs TensorFlow): benchmarks/fer_lib_peer.py
    reads (path, mode) lines and answers a label (or null: no face) per line."""
    python = venv / "bin" / "python"
    if not python.is_file():
        raise InputError(f"--fer-lib-venv {venv}: no bin/python there; make one with python3 -m venv {venv} && "
                         f"{venv}/bin/pip install fer==25.10.3")
    jobs = [{"path": src, "mode": SETS[name]} for name, s in reference.items() for src in s.sources]
    done = subprocess.run([str(python), str(Path(__file__).with_name("fer_lib_peer.py"))], input=json.dumps(jobs),
                          capture_output=True, text=True)
    if done.returncode:
        raise InputError(f"the fer library failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    answers = iter(json.loads(done.stdout))
    per_set = {}
    for name, s in reference.items():
        said = [next(answers) for _ in s.sources]
        found = np.array([label is not None for label in said])
        per_set[name] = Scored(s.sources, s.truth, found, np.array([a == t for a, t in zip(said, s.truth)]))
    return per_set


def build_report(scored: dict[str, dict[str, Scored]]) -> dict:
    first = next(iter(scored))
    report = {"machine": machine(), "sets": list(SETS), "models": {}}
    for model, per_set in scored.items():
        sets = {name: s.summary() for name, s in per_set.items()}
        entry = {"sets": sets, "mean_balanced_accuracy": float(np.mean([v["balanced_accuracy"] for v in sets.values()])),
                 "mean_accuracy": float(np.mean([v["accuracy"] for v in sets.values()]))}
        if model != first:
            entry["against_first"] = {name: paired_comparison(s.right, scored[first][name].right) for name, s in per_set.items()}
            entry["against_first"]["suite"] = paired_comparison(np.concatenate([s.right for s in per_set.values()]),
                                                                np.concatenate([s.right for s in scored[first].values()]))
        report["models"][model] = entry
    return report


def show(report: dict, tta: str) -> None:
    models = report["models"]
    rows = []
    for name in report["sets"]:
        for model, entry in models.items():
            s = entry["sets"][name]
            rows.append([name, model, f"{s['accuracy']:.1%}", f"{s['balanced_accuracy']:.1%}", f"{s['found_rate']:.1%}",
                         f"{s['images']:,}"])
    rows += [["mean over sets", model, f"{e['mean_accuracy']:.1%}", f"{e['mean_balanced_accuracy']:.1%}", "", ""]
             for model, e in models.items()]
    print_table(f"cross-dataset suite (TTA {tta}; a photo with no face found counts as wrong), {report['machine']}",
                ["set", "model", "accuracy", "balanced", "faces found", "images"], rows)
    first = next(iter(models))
    for model, entry in models.items():
        if model == first:
            continue
        parts = [f"{name} {p['only_a'] - p['only_b']:+d} (p = {p['p_value']:.2g})" for name, p in entry["against_first"].items()]
        print(f"{model} vs {first}, images right only for it minus only for {first}: " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(run_benchmark(main))
