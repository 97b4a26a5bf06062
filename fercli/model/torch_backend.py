"""Batched PyTorch inference on uint8 images, with optional test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fercli.model.views import tta_views
from fercli.model.checkpoint import LoadedModel, load_model
from fercli.choices import TTA
from fercli.model.device import resolve_device
from fercli.model.nets import count_parameters
from fercli.model.preprocess import Preprocess


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, pre: Preprocess, device, batch_size: int = 512,
                   tta: str = "none") -> torch.Tensor:
    """Logits [N, K] for uint8 images; with TTA, the log of the views' mean probability."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        views = [v.contiguous(memory_format=torch.channels_last) for v in tta_views(batch, pre, TTA(tta).value)]
        if len(views) == 1:
            outputs.append(model(views[0]).float().cpu())
        else:
            probs = torch.stack([F.softmax(model(v).float(), dim=1) for v in views]).mean(0)
            outputs.append(probs.clamp_min(1e-12).log().cpu())
    if not outputs:
        return torch.zeros((0, 0))
    return torch.cat(outputs)


class TorchClassifier:
    """A .pt checkpoint on PyTorch, on any device: fer's Classifier interface (see fercli/classifier.py)."""

    def __init__(self, loaded: LoadedModel, device: torch.device, path: Path | None = None, batch_size: int = 512):
        self.loaded, self.device, self.batch_size = loaded, device, batch_size
        self.path = path
        self.classes, self.preprocess, self.meta = loaded.classes, loaded.preprocess, loaded.meta
        self.temperature = loaded.temperature
        self.parameters = count_parameters(loaded.model)
        self.runs_on = str(device)

    @classmethod
    def open(cls, path: Path, *, device, batch_size: int = 512) -> TorchClassifier:
        device = device if isinstance(device, torch.device) else resolve_device(str(device))
        return cls(load_model(path, device), device, path=path, batch_size=batch_size)

    def log_probs(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(crops))
        if images.ndim == 3:
            images = images.unsqueeze(1)  # [N, S, S] -> [N, 1, S, S]
        return predict_logits(self.loaded.model, images, self.preprocess, self.device, self.batch_size, tta).numpy()

    def probabilities(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.log_probs(crops, tta=tta)) / self.temperature, dim=1).numpy()
