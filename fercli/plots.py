"""All matplotlib figures. Headless (Agg): no window is ever opened."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(metrics_csv: Path, out: Path) -> None:
    """Loss and accuracy per epoch; markers and whole-number epochs, so a 1-epoch run still shows its points."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    frame = pd.read_csv(metrics_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(frame["epoch"], frame[f"{split}_loss"], marker="o", markersize=3, label=split)
        ax_acc.plot(frame["epoch"], 100 * frame[f"{split}_acc"], marker="o", markersize=3, label=split)
    if "swa_val_acc" in frame:  # train.swa_start: the weight average, from the epoch it starts (blank before)
        ax_acc.plot(frame["epoch"], 100 * frame["swa_val_acc"], marker="o", markersize=3, label="val (weight average)")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.set(title="accuracy", xlabel="epoch")
    ax_acc.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    last = int(frame["epoch"].max())
    for ax in (ax_loss, ax_acc):
        ax.set_xlim(0.5, last + 0.5)
        if last <= 20:
            ax.set_xticks(range(1, last + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    """Written atomically: a full disk leaves no 0-byte picture behind."""
    from fercli.runs import write_atomic

    fig.tight_layout()
    try:
        write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".").lower() or "png"))
    finally:
        plt.close(fig)


def wrapped(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_confusion_matrix(matrix: np.ndarray, classes, out: Path, normalize: bool, title: str = "") -> None:
    """``title``: what was scored (model, data, split), above the matrix's own caption."""
    from sklearn.metrics import ConfusionMatrixDisplay

    values = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalize else matrix
    fig, ax = plt.subplots(figsize=(7, 6))
    display = ConfusionMatrixDisplay(values, display_labels=list(classes))
    display.plot(ax=ax, cmap="Blues", values_format=".2f" if normalize else "d", colorbar=True)
    caption = "confusion matrix" + (" (each row sums to 1)" if normalize else " (counts)")
    ax.set_title(f"{wrapped(title, 90)}\n{caption}" if title else caption, fontsize=9 if title else None)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    save_figure(fig, out)


def plot_reliability(bins: list[dict], ece: float, out: Path, title: str = "") -> None:
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(centers, [b["accuracy"] for b in bins], width=width * 0.95, edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    caption = f"reliability (ECE {ece:.3f})"
    ax.set_title(f"{wrapped(title, 60)}\n{caption}" if title else caption, fontsize=8 if title else None)
    ax.legend(loc="upper left")
    save_figure(fig, out)


def plot_prediction_grid(images: np.ndarray, titles: list[str], correct: list[bool], out: Path,
                         drawn=lambda: None) -> None:
    """images [N, H, W] uint8 in a near-square grid; green titles when right, red when wrong. ``drawn()`` is called
    after each image and once more when the file is written (a progress bar for big grids)."""
    n = len(images)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 2.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, ok in zip(axes.flat, images, titles, correct):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, color="green" if ok else "red", fontsize=9)
        drawn()
    save_figure(fig, out)
    drawn()
