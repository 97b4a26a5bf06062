"""Where the shipped models live. No torch here: ``fer predict`` finds its model without importing it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fercli.errors import CheckpointError

SHIPPED_NAME = "fer_vgg"  # checkpoints/fer_vgg.pt (PyTorch) and its export checkpoints/fer_vgg.onnx


def default_checkpoint(suffix: str = ".pt") -> Path:
    """The shipped model (``.pt`` or ``.onnx``), in an editable install and in an installed wheel alike."""
    path = Path(str(resources.files("fercli.checkpoints") / f"{SHIPPED_NAME}{suffix}"))
    if not path.is_file():
        raise CheckpointError(f"the shipped model {path.name} is missing from {path.parent}; reinstall fer or pass --checkpoint")
    return path
