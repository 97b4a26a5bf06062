"""What a training run is built from, by its config: input contract, network, optimizer, schedule, loss."""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from fercli.config import Config
from fercli.data.dataset import Split
from fercli.errors import ConfigError
from fercli.model.checkpoint import read_checkpoint
from fercli.model.nets import create_model
from fercli.model.preprocess import Preprocess


def build_preprocess(cfg: Config, train: Split) -> Preprocess:
    pixels = train.images[:10_000].float() / 255.0
    size = cfg.data.image_size
    crop = cfg.augment.crop or size
    return Preprocess(size, crop, cfg.data.channels, round(float(pixels.mean()), 4), round(float(pixels.std()), 4))



def model_args(cfg: Config, num_classes: int) -> dict:
    args = {"in_channels": cfg.data.channels, "num_classes": num_classes, **cfg.model.args}
    if cfg.model.name == "seed_cnn":
        args.setdefault("input_size", cfg.augment.crop or cfg.data.image_size)
    return args



def build_model(cfg: Config, num_classes: int) -> nn.Module:
    return create_model(cfg.model.name, **model_args(cfg, num_classes))



def start_from(path: str, net: nn.Module, cfg: Config, classes, pre: Preprocess) -> Preprocess:
    """Copy a checkpoint's weights into the fresh ``net`` and keep the pixel mean/std they were trained with."""
    payload = init_checkpoint(path, cfg, classes)
    net.load_state_dict(payload["state_dict"])
    return replace(pre, mean=payload["preprocess"]["mean"], std=payload["preprocess"]["std"])



def init_checkpoint(path: str, cfg: Config, classes) -> dict:
    """train.init's checkpoint, refused unless it holds this recipe's model, classes and input size."""
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"train.init: checkpoint not found: {path} (give the best.pt or last.pt of an earlier run)")
    payload = read_checkpoint(Path(path).expanduser())
    wanted = {"name": cfg.model.name, "args": model_args(cfg, len(classes))}
    if payload["model"] != wanted:
        raise ConfigError(f"train.init: {path} holds model {payload['model']['name']} {payload['model']['args']}, this recipe "
                          f"builds {wanted['name']} {wanted['args']}; set model.name and model.args to match it")
    if list(payload["classes"]) != list(classes):
        raise ConfigError(f"train.init: {path} was trained on classes {', '.join(payload['classes'])}, this data has "
                          f"{', '.join(classes)}; fine-tune on data with the same class folders")
    size = payload["preprocess"]["input_size"]
    if size != (cfg.augment.crop or cfg.data.image_size):
        raise ConfigError(f"train.init: {path} takes {size} px inputs, this recipe gives "
                          f"{cfg.augment.crop or cfg.data.image_size} px; set augment.crop={size}")
    return payload



def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    # No weight decay on BatchNorm and biases: decaying them only fights the normalisation.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    if o.name == "adam":
        # The seed used Adam's coupled L2 on every parameter; keep that exactly.
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    raise ConfigError(f"optim.name: unknown optimizer {o.name!r} (use sgd, adam or adamw)")



def lr_factor(cfg: Config, progress: float) -> float:
    """LR multiplier at ``progress`` epochs (fractional) into the run."""
    o, total = cfg.optim, cfg.train.epochs
    if o.warmup_epochs > 0 and progress < o.warmup_epochs and o.schedule != "onecycle":
        return (progress + 1e-3) / o.warmup_epochs
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "multistep":
        return o.gamma ** sum(progress >= m for m in o.milestones)
    if o.schedule == "cosine":
        start = o.warmup_epochs
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - start) / max(total - start, 1e-9))))
    if o.schedule == "onecycle":
        peak = 0.3 * total
        if progress < peak:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * progress / peak))
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - peak) / (total - peak))))
    raise ConfigError(f"optim.schedule: unknown schedule {o.schedule!r} (use constant, multistep, cosine or onecycle)")



def build_criterion(cfg: Config, train: Split, device: torch.device) -> nn.Module:
    weight = None
    if cfg.optim.class_weights:
        counts = torch.bincount(train.labels, minlength=int(train.labels.max()) + 1).float().clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)).to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.optim.label_smoothing)



def set_lr(optimizer, cfg: Config, progress: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = cfg.optim.lr * lr_factor(cfg, progress)



def autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
