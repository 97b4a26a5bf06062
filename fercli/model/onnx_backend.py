"""Run an exported ONNX model with onnxruntime: the fast start for ``fer predict`` (no PyTorch import)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fercli.choices import TTA
from fercli.errors import CheckpointError, InputError
from fercli.model.preprocess import Preprocess

TENCROP_NEEDS_PT = ("--tta tencrop needs a .pt checkpoint: an ONNX export has its centre crop built in "
                    "(use --tta none or flip with .onnx, or -c with a .pt file)")

ONNX_FORMAT_VERSION = "1"  # bump when the graph's input, output or metadata change incompatibly


class OnnxClassifier:
    """An ``fer export`` file on onnxruntime (CPU): fer's Classifier interface (see fercli/classifier.py).

    The graph takes raw pixels and returns calibrated probabilities; standardisation, the centre crop
    and the temperature are inside it.
    """

    runs_on = "onnxruntime (CPU)"

    def __init__(self, path: Path, batch_size: int = 256, threads: int | None = None):
        """threads: onnxruntime's threads for one forward pass (default: the cores); a server running several
        analyzers side by side gives each its share."""
        import onnxruntime as ort

        if not path.is_file():
            raise CheckpointError(f"model not found: {path} (write one with fer export, or omit --checkpoint)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for damaged files
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:120]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("fer_onnx_format") != ONNX_FORMAT_VERSION:
            raise CheckpointError(f"{path}: not an ONNX model written by this fer's export (no fer metadata); "
                                  "export it with fer export, or pass the .pt checkpoint")
        self.path, self.meta, self.batch_size = path, dict(meta), batch_size
        self.classes = tuple(json.loads(meta["classes"]))
        self.preprocess = read_preprocess(meta)
        # The graph applies the temperature itself; log_probs undoes it so eval can compare calibrated and not.
        self.temperature = float(meta.get("temperature", "1.0"))
        self.parameters = int(meta["parameters"]) if "parameters" in meta else None  # exports before 0.1 lack it

    def probabilities(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        views = self._views(crops, tta)
        if len(views) == 1:
            return self._run(views[0])
        return softmax(self.log_probs(crops, tta=tta), self.temperature)

    def log_probs(self, crops: np.ndarray, *, tta: TTA = TTA.none) -> np.ndarray:
        """The graph returns p = softmax(z / T); softmax(T * log p) = softmax(z) undoes the temperature."""
        tiny = np.finfo(np.float32).tiny  # not 1e-12: a sharp temperature leaves true probabilities far below it
        uncalibrated = [softmax(self.temperature * np.log(np.maximum(self._run(v), tiny))) for v in self._views(crops, tta)]
        return np.log(np.maximum(np.mean(uncalibrated, axis=0), 1e-12))

    def _views(self, crops: np.ndarray, tta: TTA) -> list[np.ndarray]:
        if crops.ndim == 4:
            crops = crops[:, 0]  # [N, 1, S, S] -> [N, S, S]: exports take gray pixels
        if TTA(tta) == TTA.tencrop:
            raise InputError(TENCROP_NEEDS_PT)
        # The centre crop is symmetric, so flipping the input flips the crop.
        return [crops] if TTA(tta) == TTA.none else [crops, crops[:, :, ::-1]]

    def _run(self, crops: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(crops, dtype=np.float32)[:, None]
        parts = [self.session.run(None, {"pixels": pixels[i : i + self.batch_size]})[0]
                 for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)


def read_preprocess(meta: dict[str, str]) -> Preprocess:
    """The source checkpoint's input contract; exports written before it was recorded carry only size and channels
    (their graph still standardises and crops correctly; only the description is shorter)."""
    if "preprocess" in meta:
        return Preprocess(**json.loads(meta["preprocess"]))
    size = int(meta["image_size"])
    return Preprocess(image_size=size, input_size=size, channels=int(meta["channels"]), mean=0.0, std=1.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / temperature) in numpy: the ONNX path never imports torch."""
    z = logits / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
