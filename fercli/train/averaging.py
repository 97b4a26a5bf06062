"""Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights a run passes through at the end of its
later epochs, usually a flatter and better point than any one of them. ``train.swa_start`` turns it on."""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from fercli.model.views import tta_views
from fercli.model.preprocess import Preprocess


class WeightAverage:
    """A running mean of a network's floating-point weights, one sample per finished epoch."""

    def __init__(self, saved: dict | None = None):
        saved = saved or {}
        self.state: dict[str, torch.Tensor] = dict(saved.get("state_dict", {}))
        self.count = int(saved.get("count", 0))

    def add(self, net: nn.Module) -> None:
        self.count += 1
        for name, value in averaged_entries(net).items():
            value = value.detach().float().cpu()
            if name not in self.state:
                self.state[name] = value.clone()
            else:  # mean of count samples, updated in place: no history kept
                self.state[name] += (value - self.state[name]) / self.count

    def to_dict(self) -> dict:
        return {"state_dict": self.state, "count": self.count}

    def averaged_model(self, net: nn.Module) -> nn.Module:
        """A copy of ``net`` carrying the mean weights (BatchNorm statistics still ``net``'s: see recompute_batchnorm)."""
        model = copy.deepcopy(net)
        current = model.state_dict()
        current.update({name: value.to(current[name].dtype) for name, value in self.state.items()})
        model.load_state_dict(current)
        return model


def averaged_entries(net: nn.Module) -> dict[str, torch.Tensor]:
    # Only learnt weights: BatchNorm's running statistics of the mean weights are not the mean of the statistics,
    # so they are measured again instead.
    learnt = {name for name, _ in net.named_parameters()}
    return {name: value for name, value in net.state_dict().items() if name in learnt}


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, images: torch.Tensor, pre: Preprocess, device, batch_size: int = 512,
                        amp=None, views: str = "none", seed: int = 0) -> None:
    """Measure BatchNorm's running statistics afresh on ``images`` (uint8), seen as at evaluation: the centre crop
    (views="none"), or one of the ten-crop views drawn at random per image (views="tencrop"; the same cost)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(images), batch_size):
        view = evaluation_view(images[start : start + batch_size].to(device), pre, views, gen)
        for norm in norms:  # each batch weighted by its size: the running mean is the mean over all the images
            norm.momentum = len(view) / (start + len(view))
        with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            model(view.contiguous(memory_format=torch.channels_last))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


def evaluation_view(images: torch.Tensor, pre: Preprocess, views: str, gen: torch.Generator) -> torch.Tensor:
    candidates = tta_views(images, pre, views)
    if len(candidates) == 1:
        return candidates[0]
    pick = torch.randint(len(candidates), (len(images),), generator=gen).to(images.device)
    return torch.stack(candidates)[pick, torch.arange(len(images), device=images.device)]
