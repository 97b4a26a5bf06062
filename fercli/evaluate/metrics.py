"""Classification metrics from predicted probabilities. scikit-learn does the work."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

ECE_BINS = 15


def summary_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """probs [N, K] (rows sum to 1), labels [N] -> the headline numbers."""
    k = probs.shape[1]
    preds = probs.argmax(1)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, average="macro", labels=range(k), zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, preds)),
        # With two classes every image is in the top two (scikit-learn raises instead of saying so).
        "top2_accuracy": 1.0 if k <= 2 else float(top_k_accuracy_score(labels, probs, k=2, labels=range(k))),
        "nll": float(log_loss(labels, np.clip(probs, 1e-12, 1), labels=range(k))),
        "ece": expected_calibration_error(probs, labels),
    }


def with_misses(preds: np.ndarray, labels: np.ndarray, found: np.ndarray) -> dict:
    """Scores of photos through the face pipeline, a photo where no face was found counted as wrong: what a user of
    ``fer predict`` sees. Balanced accuracy is the mean recall over the classes present in ``labels``."""
    right = (preds == labels) & found
    recalls = [float(right[labels == c].mean()) for c in np.unique(labels)]
    return {"images": int(len(labels)), "found": int(found.sum()), "found_rate": float(found.mean()) if len(labels) else 0.0,
            "accuracy": float(right.mean()) if len(labels) else 0.0,
            "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
            "accuracy_on_found": float(right[found].mean()) if found.any() else None}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(members.sum()),
                     "accuracy": float(correct[members].mean()) if members.any() else 0.0,
                     "confidence": float(confidence[members].mean()) if members.any() else 0.0})
    return rows


def per_class_metrics(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> list[dict]:
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, probs.argmax(1), labels=range(len(classes)), zero_division=0
    )
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)]


def confusion(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return confusion_matrix(labels, probs.argmax(1), labels=range(k))


def most_confused(matrix: np.ndarray, classes: tuple[str, ...], n: int = 3) -> list[dict]:
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    pairs = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        share = off[t, p] / max(matrix[t].sum(), 1)
        pairs.append({"true": classes[t], "pred": classes[p], "count": int(off[t, p]), "share_of_true": float(share)})
    return pairs


def paired_comparison(right_a: np.ndarray, right_b: np.ndarray) -> dict:
    """Two models scored on the same images: how many only A gets right, only B, and the exact two-sided
    McNemar p-value. A lead of a few images between two candidates is noise; this says how much."""
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    n, k = only_a + only_b, min(only_a, only_b)
    # Under "no difference" each discordant image is a fair coin: P(a split at least this lopsided), both tails.
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": p}
