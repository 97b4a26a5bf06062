"""Batched preprocessing and augmentation on the training device.

Every per-sample random transform (crop, shift, scale, rotation, flip) is folded into one affine
matrix per image and applied to the whole batch with a single ``grid_sample``; random erasing is
one masked fill. No per-image Python, no PIL, no DataLoader workers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fercli.config import AugmentConfig
from fercli.model.preprocess import Preprocess
from fercli.model.views import normalize


def augment_batch(images: torch.Tensor, pre: Preprocess, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """uint8 [N,C,H,W] on any device -> augmented float [N,C,S,S], S = pre.input_size."""
    # Capture conditions draw from the generator only when asked, so older recipes draw what they always drew.
    x = normalize(capture_conditions(images, cfg, gen) if _has_capture(cfg) else images, pre)
    n, device = x.shape[0], x.device
    if not _has_geometry(cfg) and pre.input_size == pre.image_size:
        out = x
    else:
        theta = random_affine(n, pre, cfg, gen).to(device)
        grid = F.affine_grid(theta, [n, x.shape[1], pre.input_size, pre.input_size], align_corners=False)
        # Zero after normalisation is the mean grey: borders look like average skin, not black.
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.erase > 0:
        out = random_erase(out, cfg.erase, gen)
    return out


def _has_capture(cfg: AugmentConfig) -> bool:
    return cfg.gamma > 0 or cfg.contrast > 0 or cfg.brightness > 0 or cfg.blur > 0 or cfg.noise > 0


def capture_conditions(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """uint8 [N,C,H,W] -> float [N,C,H,W] in 0..255, as other cameras and rooms would have taken the photo: exposure
    (gamma), contrast and brightness, focus (Gaussian blur) and sensor noise, drawn per image."""
    n, device = images.shape[0], images.device

    def uniform(low: float, high: float) -> torch.Tensor:  # [N, 1, 1, 1], one draw per image
        return (torch.rand(n, generator=gen) * (high - low) + low).view(n, 1, 1, 1).to(device)

    x = images.float()
    if cfg.gamma > 0:
        x = 255.0 * (x / 255.0).clamp(min=1e-4) ** torch.exp(uniform(-cfg.gamma, cfg.gamma))
    if cfg.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * torch.exp(uniform(-cfg.contrast, cfg.contrast))
    if cfg.brightness > 0:
        x = x + 255.0 * uniform(-cfg.brightness, cfg.brightness)
    if cfg.blur > 0:
        blurred = gaussian_blur(x, uniform(0.5, 1.5).view(n))
        x = torch.where(uniform(0, 1) < cfg.blur, blurred, x)
    if cfg.noise > 0:
        x = x + 255.0 * uniform(0, cfg.noise) * torch.randn(x.shape, generator=gen).to(device)
    return x.clamp(0, 255)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Each image [N,C,H,W] blurred with its own sigma [N] (px): one grouped convolution per axis."""
    n, c, h, w = x.shape
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1).to(x.device) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, 2r+1]
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _has_geometry(cfg: AugmentConfig) -> bool:
    return cfg.flip or cfg.rotate > 0 or cfg.scale > 0 or cfg.shift > 0 or cfg.crop > 0


def random_affine(n: int, pre: Preprocess, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Per-sample 2x3 matrices in normalised coordinates ([-1, 1] spans the stored image)."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (high - low) + low

    window = pre.input_size / pre.image_size  # the crop covers this fraction of the image
    zoom = uniform(1 - cfg.scale, 1 + cfg.scale) if cfg.scale > 0 else torch.ones(n)
    angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180 if cfg.rotate > 0 else torch.zeros(n)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    span = (1 - window) + 2 * cfg.shift / pre.image_size  # how far the crop centre may move
    tx, ty = uniform(-span, span), uniform(-span, span)
    if cfg.snap:
        tx, ty = snap_to_pixels(tx, pre), snap_to_pixels(ty, pre)
    scale = window / zoom
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    row0 = torch.stack([cos * flip, -sin, tx], dim=1)
    row1 = torch.stack([sin * flip, cos, ty], dim=1)
    return torch.stack([row0, row1], dim=1)


def snap_to_pixels(t: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Round normalised translations so that the crop's pixels land on the stored image's pixel centres."""
    centred = (pre.image_size - pre.input_size) / 2  # the centre crop's offset, in pixels
    offset = torch.round(centred + t * pre.image_size / 2)
    return (offset - centred) * 2 / pre.image_size


def random_erase(x: torch.Tensor, prob: float, gen: torch.Generator, area=(0.02, 0.2)) -> torch.Tensor:
    """Zero one random rectangle (2-20% of the area) in a ``prob`` fraction of the images."""
    n, _, h, w = x.shape
    frac = torch.rand(n, generator=gen) * (area[1] - area[0]) + area[0]
    aspect = torch.exp(torch.rand(n, generator=gen) * 2 * math.log(3) - math.log(3))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w)
    top = torch.rand(n, generator=gen) * (h - eh)
    left = torch.rand(n, generator=gen) * (w - ew)
    on = torch.rand(n, generator=gen) < prob
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1))
        & on.view(n, 1, 1)
    )
    return x.masked_fill(inside.unsqueeze(1).to(x.device), 0.0)


def mixup(x: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each image with a shuffled partner: returns (mixed, partner order, weight of the original)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    lam = max(lam, 1 - lam)  # keep the original image dominant so its label stays meaningful
    order = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[order], order, lam


def cutmix(x: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste one box of a shuffled partner into each image (Yun et al., 2019): returns (mixed, partner order,
    weight of the original = the share of pixels that are still its own)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    order = torch.randperm(n, generator=gen).to(x.device)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = x[order][..., top:bottom, left:right]
    return mixed, order, 1 - (bottom - top) * (right - left) / (h * w)
