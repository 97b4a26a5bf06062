"""Batched PyTorch inference on uint8 images, with optional test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fercli.augment import Preprocess, tta_views
from fercli.checkpoint import LoadedModel
from fercli.errors import InputError
from fercli.onnx_model import OnnxClassifier


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


def onnx_logits(model: OnnxClassifier, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """What ``predict_logits`` gives, from an ONNX export: the log of the views' mean uncalibrated probability.

    The export returns calibrated probabilities p = softmax(z / T); softmax(T * log p) = softmax(z)
    undoes the temperature, so the caller's ``softmax(logits / T)`` means the same for both kinds.
    """
    if tta == "tencrop":
        raise InputError("--tta tencrop needs the .pt checkpoint: an ONNX export has its centre crop built in "
                         "(use --tta none or flip with .onnx)")
    crops = images[:, 0].numpy()
    views = [crops] if tta == "none" else [crops, crops[:, :, ::-1]]  # the centre crop is symmetric: flip first
    probs = [torch.from_numpy(model.probabilities(np.ascontiguousarray(v))) for v in views]
    tiny = torch.finfo(torch.float32).tiny  # not 1e-12: a sharp temperature leaves true probabilities far below it
    uncalibrated = torch.stack([F.softmax(model.temperature * p.clamp_min(tiny).log(), dim=1) for p in probs]).mean(0)
    return uncalibrated.clamp_min(1e-12).log()


def logits_of(model: LoadedModel | OnnxClassifier, images: torch.Tensor, device, batch_size: int = 512,
              tta: str = "none") -> torch.Tensor:
    """Logits [N, K] from a PyTorch checkpoint (on ``device``) or an ONNX export (onnxruntime, CPU)."""
    if isinstance(model, OnnxClassifier):
        return onnx_logits(model, images, tta)
    return predict_logits(model.model, images, model.preprocess, device, batch_size, tta)


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
