"""``fer export``: a checkpoint -> a self-contained ONNX file that ``fer predict`` runs without PyTorch.

The graph takes raw grey pixels (0..255, float32, [N, 1, S, S] with S the stored image side) and
returns calibrated probabilities, so standardisation, the centre crop, temperature scaling and the
softmax all travel inside the file. The class names and the source checkpoint's fingerprint go
into the ONNX metadata, which makes the file self-describing like the checkpoint it came from.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from fercli import __version__
from fercli.augment import Preprocess, center_crop, normalize
from fercli.checkpoint import file_fingerprint, load_model
from fercli.errors import CheckpointError
from fercli.onnx_model import ONNX_FORMAT_VERSION
from fercli.runs import refuse_overwrite, write_atomic

OPSET = 18


class PixelsToProbabilities(nn.Module):
    """What ``fer predict`` needs from a model, end to end, as one traceable module."""

    def __init__(self, model: nn.Module, pre: Preprocess, temperature: float):
        super().__init__()
        self.model, self.pre, self.temperature = model, pre, temperature

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = center_crop(normalize(pixels, self.pre), self.pre.input_size)
        return torch.softmax(self.model(x) / self.temperature, dim=1)


def export_onnx(checkpoint: Path, output: Path, overwrite: bool = False) -> Path:
    try:
        import onnx  # the exporter needs onnx and onnxscript; fer predict needs only onnxruntime
        import onnxscript  # noqa: F401
    except ImportError:
        raise CheckpointError('fer export needs the ONNX exporter: pip install "fercli[export]"') from None
    if checkpoint.suffix.lower() == ".onnx":
        raise CheckpointError(f"{checkpoint}: already an ONNX export; fer export takes a .pt checkpoint")
    refuse_overwrite(output, overwrite)
    loaded = load_model(checkpoint, torch.device("cpu"))
    pre = loaded.preprocess
    wrapper = PixelsToProbabilities(loaded.model, pre, loaded.temperature).eval()
    example = torch.full((2, pre.channels, pre.image_size, pre.image_size), 128.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter is not the user's concern
        program = torch.onnx.export(wrapper, (example,), dynamo=True, verbose=False, opset_version=OPSET,
                                    input_names=["pixels"], output_names=["probabilities"],
                                    dynamic_shapes=({0: torch.export.Dim("faces")},))
    proto = program.model_proto
    metadata = {
        "fer_onnx_format": ONNX_FORMAT_VERSION,
        "fer_version": __version__,
        "classes": json.dumps(list(loaded.classes)),
        "image_size": str(pre.image_size),
        "channels": str(pre.channels),
        "model": json.dumps(loaded.meta["model"]),
        "temperature": repr(loaded.temperature),
        "source_checkpoint": checkpoint.name,
        "source_sha256": file_fingerprint(checkpoint),
    }
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    write_atomic(output, lambda tmp: onnx.save(proto, tmp))
    return output
