"""Temperature scaling: one scalar fitted on held-out data so probabilities mean what they say."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from fercli.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from fercli.data.dataset import Split
from fercli.model.torch_backend import predict_logits


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The softmax temperature that minimises NLL on held-out data (Guo et al., 2017), within [low, high].

    A golden-section search over log T: one scalar needs no gradients, and unlike L-BFGS (which returned NaN for
    a barely trained network's logits) it cannot leave the bracket."""
    logits = logits.float()

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > 1e-4:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def calibrate_best(path: Path, val: Split, device, batch_size: int, reporter) -> None:
    loaded = load_model(path, device)
    logits = predict_logits(loaded.model, val.images, loaded.preprocess, device, batch_size)
    temperature = fit_temperature(logits, val.labels)
    payload = read_checkpoint(path)
    payload["temperature"] = temperature
    save_checkpoint(payload, path)
    reporter.message(f"fitted softmax temperature {temperature:.3f} on the validation split")
