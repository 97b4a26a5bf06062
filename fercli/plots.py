"""All matplotlib figures. Headless (Agg): no window is ever opened."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(metrics_csv: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(metrics_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(frame["epoch"], frame["train_loss"], label="train")
    ax_loss.plot(frame["epoch"], frame["val_loss"], label="val")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(frame["epoch"], frame["train_acc"], label="train")
    ax_acc.plot(frame["epoch"], frame["val_acc"], label="val")
    ax_acc.set(title="accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
