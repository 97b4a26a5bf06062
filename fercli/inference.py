"""Batched inference on uint8 images, with optional test-time augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fercli.augment import Preprocess, tta_views


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
