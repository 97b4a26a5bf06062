"""Run an exported ONNX model with onnxruntime: the fast start for ``fer predict`` (no PyTorch import)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fercli.errors import CheckpointError

ONNX_FORMAT_VERSION = "1"  # bump when the graph's input, output or metadata change


class OnnxClassifier:
    """uint8 face crops [N, S, S] -> calibrated probabilities [N, K], on the CPU."""

    def __init__(self, path: Path, batch_size: int = 256):
        import onnxruntime as ort

        if not path.is_file():
            raise CheckpointError(f"model not found: {path} (write one with fer export, or omit --checkpoint)")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for damaged files
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:120]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("fer_onnx_format") != ONNX_FORMAT_VERSION:
            raise CheckpointError(f"{path}: not an ONNX model written by this fer's export (no fer metadata); "
                                  "export it with fer export, or pass the .pt checkpoint")
        self.classes = tuple(json.loads(meta["classes"]))
        self.image_size, self.channels = int(meta["image_size"]), int(meta["channels"])
        self.meta, self.batch_size = dict(meta), batch_size
        # The graph applies the temperature itself; eval needs it to recover the uncalibrated probabilities.
        self.temperature = float(meta.get("temperature", "1.0"))
        self.parameters = int(meta["parameters"]) if "parameters" in meta else None  # older exports (the shipped .onnx) lack it

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        pixels = crops.astype(np.float32)[:, None]
        parts = [self.session.run(None, {"pixels": pixels[i : i + self.batch_size]})[0]
                 for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)
