"""Temperature scaling: one scalar fitted on held-out data so probabilities mean what they say."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fercli.checkpoint import load_model, read_checkpoint, save_checkpoint
from fercli.data import Split
from fercli.inference import predict_logits


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The softmax temperature that minimises NLL on held-out data (Guo et al., 2017)."""
    logits = logits.clone()  # may come from inference_mode, which autograd cannot use
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def calibrate_best(path: Path, val: Split, device, batch_size: int, reporter) -> None:
    loaded = load_model(path, device)
    logits = predict_logits(loaded.model, val.images, loaded.preprocess, device, batch_size)
    temperature = fit_temperature(logits, val.labels)
    payload = read_checkpoint(path)
    payload["temperature"] = temperature
    save_checkpoint(payload, path)
    reporter.message(f"fitted softmax temperature {temperature:.3f} on the validation split")
