"""Batched PyTorch inference on uint8 images, with optional test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fercli.augment import Preprocess, tta_views
from fercli.checkpoint import LoadedModel


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, pre: Preprocess, device, batch_size: int = 512,
                   tta: str = "none") -> torch.Tensor:
    """Logits [N, K] for uint8 images; with TTA, the log of the views' mean probability."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        views = [v.contiguous(memory_format=torch.channels_last) for v in tta_views(batch, pre, tta)]
        if len(views) == 1:
            outputs.append(model(views[0]).float().cpu())
        else:
            probs = torch.stack([F.softmax(model(v).float(), dim=1) for v in views]).mean(0)
            outputs.append(probs.clamp_min(1e-12).log().cpu())
    if not outputs:
        return torch.zeros((0, 0))
    return torch.cat(outputs)


class TorchClassifier:
    """uint8 face crops [N, S, S] -> calibrated probabilities [N, K] with a PyTorch checkpoint, on any device."""

    def __init__(self, loaded: LoadedModel, device: torch.device):
        self.loaded, self.device = loaded, device
        self.classes, self.meta = loaded.classes, loaded.meta
        self.image_size, self.channels = loaded.preprocess.image_size, loaded.preprocess.channels

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(crops).unsqueeze(1)
        logits = predict_logits(self.loaded.model, images, self.loaded.preprocess, self.device, batch_size=256)
        return torch.softmax(logits / self.loaded.temperature, dim=1).numpy()
