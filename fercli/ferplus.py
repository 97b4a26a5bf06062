"""FER+ (Microsoft's crowd relabelling of FER-2013, MIT licence): ten votes per image, majority labels by FER+'s
own protocol. The votes file is the one in the shared data (``ferplus.csv`` beside train/ and test/: the votes
joined to the Kaggle file names)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fercli.data import Dataset, Split, Warn
from fercli.errors import DataError

# FER+'s vote columns, and the fer class each emotion is (contempt has none among FER-2013's seven).
EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
TO_FER = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "angry",
          "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
VOTE_COLUMNS = (*EMOTIONS, "unknown", "NF")
FERPLUS_CLASSES = tuple(sorted(TO_FER.values()))  # FER-2013's seven and contempt, alphabetical like the folders


def read_votes(path: Path) -> dict[str, np.ndarray]:
    """file (relative to the FER-2013 folder) -> votes [10] in VOTE_COLUMNS order."""
    if not path.is_file():
        raise DataError(f"{path}: no FER+ votes file; --labels ferplus needs ferplus.csv beside train/ and test/")
    with open(path, newline="") as handle:
        return {row["file"]: np.array([int(row[c] or 0) for c in VOTE_COLUMNS]) for row in csv.DictReader(handle)}


def majority(votes: np.ndarray) -> str | None:
    """FER+'s majority label: single stray votes dropped, a strict majority of what is left, and not
    "unknown" or "not a face"; None when there is no such label (no votes, a tie, no majority)."""
    kept = np.where(votes > 1, votes, 0)
    total = kept.sum()
    if total == 0:
        return None
    top = int(kept.argmax())
    if kept[top] * 2 <= total or top >= len(EMOTIONS):
        return None
    return TO_FER[EMOTIONS[top]]


def relabel(split: Split, root: Path, classes: tuple[str, ...]) -> tuple[Split, dict]:
    """The split with FER+ majority labels, keeping the images that have one among ``classes``."""
    votes = read_votes(root / "ferplus.csv")
    base = root.resolve()
    keep, labels, dropped = [], [], {"no_votes": 0, "no_majority": 0, "not_in_model": 0}
    for i, source in enumerate(split.sources):
        key = Path(source).resolve().relative_to(base).as_posix() if Path(source).is_absolute() else source
        row = votes.get(key)
        label = majority(row) if row is not None else None
        if row is None or row.sum() == 0:
            dropped["no_votes"] += 1
        elif label is None:
            dropped["no_majority"] += 1
        elif label not in classes:
            dropped["not_in_model"] += 1
        else:
            keep.append(i)
            labels.append(classes.index(label))
    index = torch.tensor(keep, dtype=torch.long)
    chosen = replace(split, images=split.images[index], labels=torch.tensor(labels, dtype=torch.long),
                     sources=[split.sources[i] for i in keep])
    agree = float((split.labels[index] == chosen.labels).float().mean()) if keep else 0.0
    return chosen, {"labels": "ferplus", "kept": len(keep), "dropped": dropped, "agree_with_fer2013": round(agree, 4)}


def ferplus_dataset(dataset: Dataset, root: Path, warn: Warn = lambda _msg: None) -> Dataset:
    """Every split relabelled with FER+ majorities (8 classes); images without one are left out, and counted."""
    splits, dropped = {}, 0
    for name, split in dataset.splits.items():
        relabelled, info = relabel(split, root, FERPLUS_CLASSES)
        splits[name] = relabelled
        dropped += sum(info["dropped"].values())
    warn(f"FER+ labels: {dropped:,} image(s) without a FER+ majority left out")
    return replace(dataset, classes=FERPLUS_CLASSES, splits=splits, fingerprint=f"{dataset.fingerprint}+ferplus")
