"""Images that set an int8 export's activation ranges: a seeded sample of the model's training split."""

from __future__ import annotations

import numpy as np
import torch

from fercli.config import DataConfig
from fercli.data.dataset import load_dataset
from fercli.errors import DataError
from fercli.model.checkpoint import LoadedModel, training_data_root

CALIBRATION_IMAGES = 512


def calibration_images(loaded: LoadedModel, *, data: str | None = None, warn=lambda _message: None) -> tuple[np.ndarray, str]:
    """A seeded sample of the training split as float pixels [N, C, S, S], the graph's input."""
    root = data or training_data_root(loaded.meta)
    if not root:
        raise DataError("--int8 needs training images to calibrate on; pass --data PATH")
    dataset = load_dataset(DataConfig(root=root, image_size=loaded.image_size, channels=loaded.channels, skip_bad=True), warn)
    train = dataset.splits["train"]
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:CALIBRATION_IMAGES]
    return train.images[pick].float().numpy(), root
