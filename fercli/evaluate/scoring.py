"""Scoring models on a data split: open them, load the split in their class order, average, report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fercli.model.checkpoint import training_data_root
from fercli.choices import TTA
from fercli.model.classifier import Classifier, open_classifier
from fercli.config import DataConfig
from fercli.data.dataset import Dataset, Split, Warn, load_dataset
from fercli.errors import DataError, InputError
from fercli.evaluate.metrics import confusion, most_confused, per_class_metrics, reliability_bins, summary_metrics
from fercli.model.shipped import default_checkpoint


def open_classifiers(paths: list[Path] | None, device: torch.device, batch_size: int | None = None) -> tuple[list[Path], list[Classifier]]:
    """The models to score (default: the shipped .pt, which allows every TTA); an ensemble must share its classes."""
    paths = list(paths or [default_checkpoint(".pt")])
    models = [open_classifier(p, device=device, batch_size=batch_size) for p in paths]
    for path, model in zip(paths[1:], models[1:]):
        if model.classes != models[0].classes:
            raise InputError(f"{path}: classes {list(model.classes)} differ from {paths[0]}'s; an ensemble needs the same classes")
    return [model.path for model in models], models  # the files opened, also for a shipped model given by name


def load_split(data: str | None, models: list[Classifier], split: str, warn: Warn = lambda _msg: None, *,
               faces: str = "crops") -> tuple[Split, Dataset]:
    """The split, with labels re-indexed into the checkpoint's class order, and the dataset it came from.
    faces: crops (the images are face crops) or detect (photos, through the face pipeline: data.faces)."""
    first = models[0]
    root = data or training_data_root(first.meta)
    if not root:
        raise DataError("no data given; pass --data PATH (a FER-2013 folder or csv, or class folders)")
    # Unreadable images are left out with a warning that counts them (data.skip_bad is a training setting).
    cfg = DataConfig(root=root, image_size=first.preprocess.image_size, channels=first.preprocess.channels, skip_bad=True,
                     faces=faces)
    dataset = load_dataset(cfg, warn)
    chosen = dataset.split(split)
    unknown = [c for c in dataset.classes if c not in first.classes]
    if unknown:
        raise DataError(f"the data has class(es) {unknown} that the checkpoint does not know "
                        f"(it knows {list(first.classes)}); rename the folders or use a matching checkpoint")
    remap = torch.tensor([first.classes.index(c) for c in dataset.classes])
    return replace(chosen, labels=remap[chosen.labels]), dataset


def clean_part(chosen: Split, dataset: Dataset, split: str) -> np.ndarray | None:
    """bool [N]: the images of ``chosen`` with no twin in the training split (None when that means nothing:
    the split is train, includes it, or the dataset has none)."""
    from fercli.evaluate.audit import has_twin_in

    train = dataset.splits.get("train")
    if split in ("train", "all") or train is None or len(train) == 0:
        return None
    return ~has_twin_in(chosen.images[:, 0].numpy(), train.images[:, 0].numpy())


SCORE_CHUNK = 1024  # images per progress step when scoring a split


def model_logits(models: list[Classifier], images: torch.Tensor, tta: TTA) -> list[np.ndarray]:
    """Each model's log-probabilities for ``images``, with a progress bar on stderr (ten-crop TTA on a CPU takes
    minutes)."""
    from fercli.console import WorkProgress

    crops = images.numpy()
    starts = range(0, len(crops), SCORE_CHUNK)
    label = f"scoring {len(crops):,} images" + (f" ({tta.value})" if tta != TTA.none else "")
    with WorkProgress(label, total=len(crops) * len(models)) as bar:
        per_model = []
        for m in models:
            parts = []
            for i in starts:
                parts.append(m.log_probs(crops[i:i + SCORE_CHUNK], tta=tta))
                bar.advance(len(parts[-1]))
            per_model.append(np.concatenate(parts) if parts else np.zeros((0, len(m.classes)), np.float32))
        return per_model


def average_probs(logits: list[np.ndarray], temperatures: list[float]) -> np.ndarray:
    """Mean of each model's temperature-scaled class probabilities: [N, K]."""
    return torch.stack([torch.softmax(torch.from_numpy(z) / t, dim=1) for z, t in zip(logits, temperatures)]).mean(0).numpy()


def ensemble_probs(models: list[Classifier], images: torch.Tensor, tta: TTA) -> np.ndarray:
    """The models' averaged class probabilities [N, K] (a progress bar on stderr)."""
    return average_probs(model_logits(models, images, tta), [m.temperature for m in models])


def build_report(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict:
    matrix = confusion(probs, labels, len(classes))
    return {"metrics": summary_metrics(probs, labels), "per_class": per_class_metrics(probs, labels, classes),
            "confusion": matrix.tolist(), "most_confused": most_confused(matrix, classes),
            "reliability": reliability_bins(probs, labels)}
