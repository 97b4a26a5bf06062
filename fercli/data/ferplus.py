"""FER+ (Microsoft's crowd relabelling of FER-2013, MIT licence): ten votes per image, majority labels by FER+'s
own protocol, and the vote distribution as soft training targets.

Where the votes come from, first found wins:
- ``fer2013new.csv`` (Microsoft's file) beside a FER-2013 challenge csv: row i holds the votes of fer2013.csv's row i;
- ``ferplus.csv`` beside train/ and test/ of a Kaggle-layout folder (the votes joined to its file names);
- the same join shipped inside fer (``ferplus_votes.csv.gz``, see FERPLUS-LICENSE), for Kaggle-layout folders.
Folder images are matched by their last three path parts (``test/angry/PrivateTest_10131363.jpg``), so the data may
sit anywhere and be opened as a whole or one split folder at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fercli.data.dataset import Dataset, Split, Warn
from fercli.errors import DataError

# FER+'s vote columns, and the fer class each emotion is (contempt has none among FER-2013's seven).
EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
TO_FER = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "angry",
          "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
VOTE_COLUMNS = (*EMOTIONS, "unknown", "NF")
FERPLUS_CLASSES = tuple(sorted(TO_FER.values()))  # FER-2013's seven and contempt, alphabetical like the folders
PACKAGED_VOTES = Path(__file__).with_name("ferplus_votes.csv.gz")

Lookup = Callable[[str], "np.ndarray | None"]  # an image's source (path or "file.csv:row") -> its 10 votes


def read_votes(path: Path) -> dict[str, np.ndarray]:
    """file (relative to the FER-2013 folder) -> votes [10] in VOTE_COLUMNS order; ``path`` may be gzipped."""
    if not path.is_file():
        raise DataError(f"{path}: no FER+ votes file")
    raw = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return {row["file"]: vote_row(row) for row in csv.DictReader(io.StringIO(raw))}


def vote_row(row: dict[str, str]) -> np.ndarray:
    return np.array([int(row[c] or 0) for c in VOTE_COLUMNS])


def path_key(source: str) -> str:
    return "/".join(Path(source).parts[-3:])


def votes_lookup(root: Path) -> tuple[Lookup, str]:
    """How to find each image's votes in the dataset at ``root``, and a line saying where they come from."""
    root = Path(root)
    challenge = root if root.is_file() else root / "fer2013.csv"
    if challenge.suffix.lower() == ".csv" and challenge.is_file():
        return microsoft_lookup(challenge), f"{challenge.with_name('fer2013new.csv')} (row by row)"
    beside = root / "ferplus.csv"
    votes_file = beside if beside.is_file() else PACKAGED_VOTES
    by_key = {path_key(name): votes for name, votes in read_votes(votes_file).items()}
    return (lambda source: by_key.get(path_key(source))), str(votes_file)


def microsoft_lookup(challenge: Path) -> Lookup:
    """Votes from Microsoft's fer2013new.csv, whose rows follow the challenge csv's rows one to one."""
    new = challenge.with_name("fer2013new.csv")
    if not new.is_file():
        raise DataError(f"{new}: not found; FER+ labels for {challenge.name} need Microsoft's fer2013new.csv beside it "
                        "(github.com/microsoft/FERPlus, same row order)")
    with open(new, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in VOTE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{new}: no column(s) {missing}; expected FER+'s Usage,Image name,{','.join(VOTE_COLUMNS)}")
        rows = [vote_row(row) for row in reader]
    name = challenge.resolve()

    def lookup(source: str) -> np.ndarray | None:
        path, _, line = source.rpartition(":")
        if not line.isdigit() or Path(path).resolve() != name:
            return None
        index = int(line) - 2  # sources count csv lines: the header is line 1
        return rows[index] if 0 <= index < len(rows) else None

    return lookup


def kept_votes(votes: np.ndarray) -> np.ndarray:
    """FER+'s first step: single stray votes dropped."""
    return np.where(votes > 1, votes, 0)


def majority(votes: np.ndarray) -> str | None:
    """FER+'s majority label: single stray votes dropped, a strict majority of what is left, and not
    "unknown" or "not a face"; None when there is no such label (no votes, a tie, no majority)."""
    kept = kept_votes(votes)
    total = kept.sum()
    if total == 0:
        return None
    top = int(kept.argmax())
    if kept[top] * 2 <= total or top >= len(EMOTIONS):
        return None
    return TO_FER[EMOTIONS[top]]


def vote_distribution(votes: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Soft target over ``classes``: the emotion votes left after dropping single strays, summing to 1 (unknown
    and not-a-face votes, and emotions the model lacks, are left out)."""
    kept = kept_votes(votes)[: len(EMOTIONS)].astype(np.float32)
    target = np.zeros(len(classes), np.float32)
    for emotion, count in zip(EMOTIONS, kept):
        if TO_FER[emotion] in classes:
            target[classes.index(TO_FER[emotion])] += count
    return target / target.sum()


def relabel(split: Split, lookup: Lookup, classes: tuple[str, ...], soft: bool = False) -> tuple[Split, dict]:
    """The split with FER+ majority labels, keeping the images that have one among ``classes``; with ``soft``, the
    vote distribution of each kept image as its training target too."""
    keep, labels, targets = [], [], []
    dropped = {"no_votes": 0, "no_majority": 0, "not_in_model": 0}
    for i, source in enumerate(split.sources):
        row = lookup(source)
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
            if soft:
                targets.append(vote_distribution(row, classes))
    index = torch.tensor(keep, dtype=torch.long)
    chosen = replace(split, images=split.images[index], labels=torch.tensor(labels, dtype=torch.long),
                     sources=[split.sources[i] for i in keep],
                     soft=torch.from_numpy(np.stack(targets)) if soft and targets else None)
    agree = float((split.labels[index] == chosen.labels).float().mean()) if keep else 0.0
    return chosen, {"labels": "ferplus", "kept": len(keep), "dropped": dropped, "agree_with_fer2013": round(agree, 4)}


def ferplus_dataset(dataset: Dataset, root: Path, warn: Warn = lambda _msg: None, soft: bool = False) -> Dataset:
    """Every split relabelled with FER+ majorities (8 classes); images without one are left out, and counted. With
    ``soft``, the training split also carries each image's vote distribution (data.targets=votes)."""
    lookup, where = votes_lookup(root)
    splits, dropped = {}, 0
    for name, split in dataset.splits.items():
        relabelled, info = relabel(split, lookup, FERPLUS_CLASSES, soft=soft and name == "train")
        splits[name] = relabelled
        dropped += sum(info["dropped"].values())
    warn(f"FER+ labels from {where}: {dropped:,} image(s) without a FER+ majority left out")
    kind = "+ferplus-votes" if soft else "+ferplus"
    return replace(dataset, classes=FERPLUS_CLASSES, splits=splits, fingerprint=f"{dataset.fingerprint}{kind}")


def mix_vote_targets(dataset: Dataset, root: Path, weight: float, warn: Warn = lambda _msg: None) -> Dataset:
    """FER-2013's labels kept (and scored against), but each training image's target becomes (1 - ``weight``) x its
    label + ``weight`` x its FER+ vote distribution over the same classes (data.targets=mixed): ten people's view
    of the face softens a label that is wrong for about one image in ten. Images without usable votes keep their
    label; validation and test are untouched."""
    lookup, where = votes_lookup(root)
    train = dataset.splits["train"]
    targets = torch.nn.functional.one_hot(train.labels, len(dataset.classes)).float()
    mixed = 0
    for i, source in enumerate(train.sources):
        row = lookup(source)
        if row is None or not any(kept_votes(row)[j] for j, e in enumerate(EMOTIONS) if TO_FER[e] in dataset.classes):
            continue  # no votes, or only for contempt, unknown or not-a-face: nothing to mix in
        targets[i] = (1 - weight) * targets[i] + weight * torch.from_numpy(vote_distribution(row, dataset.classes))
        mixed += 1
    warn(f"FER+ votes from {where} mixed into {mixed:,} of {len(train):,} training targets (weight {weight})")
    splits = {**dataset.splits, "train": replace(train, soft=targets)}
    return replace(dataset, splits=splits, fingerprint=f"{dataset.fingerprint}+ferplus-mix{weight}")

