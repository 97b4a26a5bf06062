"""A model's input views: uint8 images -> the standardised, cropped tensors it sees (and its test-time views)."""

from __future__ import annotations

import torch

from fercli.model.preprocess import Preprocess


def normalize(images: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """uint8 [N,C,H,W] -> float, scaled to 0..1 and standardised."""
    return (images.float() / 255.0 - pre.mean) / pre.std


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def tta_views(images: torch.Tensor, pre: Preprocess, mode: str) -> list[torch.Tensor]:
    """The views whose probabilities are averaged: none | flip | tencrop."""
    x = normalize(images, pre)
    if mode == "none":
        return [center_crop(x, pre.input_size)]
    if mode == "flip":
        center = center_crop(x, pre.input_size)
        return [center, center.flip(-1)]
    if mode == "tencrop":
        s, full = pre.input_size, pre.image_size
        corners = [(0, 0), (0, full - s), (full - s, 0), (full - s, full - s)]
        crops = [x[..., t : t + s, l : l + s] for t, l in corners] + [center_crop(x, s)]
        return crops + [c.flip(-1) for c in crops]
    raise ValueError(f"unknown TTA mode {mode!r}")
