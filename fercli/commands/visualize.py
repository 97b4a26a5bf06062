"""``fer visualize``: the seed's true -> pred grid, with filters for the mistakes worth looking at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fercli.model.device import resolve_device
from fercli.errors import InputError
from fercli import console
from fercli.choices import TTA
from fercli.evaluate.scoring import ensemble_probs, load_split, open_classifiers
from fercli.runs import new_file_path, refuse_overwrite


def run_visualize(*, n: int, checkpoints: list[Path] | None, data: str | None, split: str, seed: int, errors: bool,
                  pair: str | None, least_confident: bool, out: Path | None, overwrite: bool, device_name: str) -> dict:
    if n < 1:
        raise InputError(f"--n {n}: need at least one image")
    if out is not None:
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
            raise InputError(f"--output {out}: give a .png, .jpg, .pdf or .svg file name")
        refuse_overwrite(out, overwrite)
    device = resolve_device(device_name)
    _paths, models = open_classifiers(checkpoints, device)
    chosen, _dataset = load_split(data, models, split, warn=console.warn)
    classes = models[0].classes
    probs = ensemble_probs(models, chosen.images, TTA.none)
    labels, preds = chosen.labels.numpy(), probs.argmax(1)
    picked = pick_images(labels, preds, probs, classes, n, seed, errors, pair, least_confident)
    titles = [f"{classes[labels[i]]} -> {classes[preds[i]]} ({probs[i, preds[i]]:.0%})" for i in picked]
    target = out or new_file_path(Path("runs/visualize"), "grid", ".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    from fercli.plots import plot_prediction_grid

    images = chosen.images[picked, 0].numpy()
    right = [bool(labels[i] == preds[i]) for i in picked]
    with console.WorkProgress(f"drawing {len(picked)} images", total=len(picked) + 1) as bar:
        plot_prediction_grid(images, titles, right, target, drawn=lambda: bar.advance(1))
    return {"output": str(target), "images": len(picked), "right": sum(right)}


def pick_images(labels, preds, probs, classes, n: int, seed: int, errors: bool, pair: str | None,
                least_confident: bool) -> np.ndarray:
    mask = np.ones(len(labels), dtype=bool)
    if errors:
        mask &= preds != labels
    if pair:
        true_name, _, pred_name = pair.partition(":")
        for name in (true_name, pred_name):
            if name not in classes:
                raise InputError(f"--pair {pair}: {name!r} is not a class; use TRUE:PRED with classes from {', '.join(classes)}")
        mask &= (labels == classes.index(true_name)) & (preds == classes.index(pred_name))
    candidates = np.flatnonzero(mask)
    if len(candidates) == 0:
        raise InputError("no images match the filters (--errors/--pair); loosen them")
    if least_confident:
        return candidates[np.argsort(probs[candidates].max(1))[:n]]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
