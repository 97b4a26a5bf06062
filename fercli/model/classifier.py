"""One way to open a model file, whatever its format: ``open_classifier(path, device=...)``.

Every command that needs a model (eval, visualize, predict) goes through it. ``.onnx`` exports run on
onnxruntime without importing PyTorch (the fast start of ``fer predict``); ``.pt`` checkpoints run on
PyTorch on any device. Both answer the same three questions: which classes, which input, which
probabilities for a batch of uint8 face crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fercli.choices import TTA
from fercli.errors import InputError
from fercli.model.preprocess import Preprocess
from fercli.model.shipped import SHIPPED_MODELS, default_checkpoint, shipped_model


class Classifier(Protocol):
    path: Path
    classes: tuple[str, ...]
    preprocess: Preprocess  # the input contract: crops are uint8, preprocess.image_size square
    temperature: float  # the softmax temperature fitted on validation data
    parameters: int | None
    meta: dict[str, Any]  # the checkpoint's description (config, metrics, ...) or the export's metadata
    runs_on: str  # "cpu", "cuda:0", "onnxruntime (CPU)"

    def log_probs(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        """uint8 crops [N, S, S] or [N, C, S, S] -> uncalibrated logits [N, K] (with TTA: log of the mean probability)."""

    def probabilities(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        """uint8 crops -> calibrated class probabilities [N, K]: softmax(log_probs / temperature)."""


def open_classifier(path: Path | None = None, *, device: Any = "auto", batch_size: int | None = None,
                    threads: int | None = None) -> Classifier:
    """``path`` by its suffix; None is the shipped model (its ONNX form on the CPU, the .pt on other devices);
    a shipped model's name (``fer2013``, ``ferplus``) picks that one.

    ``device`` is a name (auto, cpu, cuda, cuda:N, mps) or a resolved torch.device; ONNX runs on the CPU only.
    ``batch_size``: crops per forward pass (default: each runtime's own). ``threads``: an ONNX model's threads.
    """
    options = {} if batch_size is None else {"batch_size": batch_size}
    on_cpu = str(device).strip().lower() in ("auto", "cpu")
    path = Path(path) if path is not None else default_checkpoint(".onnx" if on_cpu else ".pt")
    if not path.exists() and str(path) in SHIPPED_MODELS:  # -c ferplus: a shipped model by name
        path = shipped_model(str(path), prefer_onnx=on_cpu)
    if path.suffix.lower() == ".onnx":
        if not on_cpu:
            raise InputError(f"--device {device}: ONNX models run on the CPU; pass a .pt checkpoint to use {device}")
        from fercli.model.onnx_backend import OnnxClassifier

        return OnnxClassifier(path, threads=threads, **options)
    from fercli.model.torch_backend import TorchClassifier

    return TorchClassifier.open(path, device=device, **options)

