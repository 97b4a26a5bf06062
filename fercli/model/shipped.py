"""Where the shipped models live. No torch here: ``fer predict`` finds its models without importing it."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from fercli.errors import CheckpointError

SHIPPED_NAME = "fer_vgg"  # checkpoints/fer_vgg.pt (PyTorch) and its export checkpoints/fer_vgg.onnx
# Shipped models by the name -c takes: FER-2013's seven classes (the default), or FER+'s eight; each as .pt and .onnx.
SHIPPED_MODELS = {"fer2013": "fer_vgg", "ferplus": "fer_ferplus"}
# YuNet face detector (Apache-2.0, see checkpoints/LICENSE-yunet): OpenCV Zoo's face_detection_yunet_2023mar.onnx.
YUNET_NAME = "yunet_s_640_640.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def shipped_file(name: str) -> Path:
    """A file of the fercli.checkpoints package, in an editable install and in an installed wheel alike."""
    path = Path(str(resources.files("fercli.checkpoints") / name))
    if not path.is_file():
        raise CheckpointError(f"the shipped model {path.name} is missing from {path.parent}; reinstall fer or pass --checkpoint")
    return path


def default_checkpoint(suffix: str = ".pt") -> Path:
    """The shipped expression model: ``.pt`` (PyTorch) or ``.onnx`` (its export)."""
    return shipped_file(SHIPPED_NAME + suffix)


def shipped_model(name: str, prefer_onnx: bool) -> Path:
    """A shipped model by name (see SHIPPED_MODELS): its ONNX export when preferred and present, else its .pt."""
    stem = SHIPPED_MODELS[name]
    folder = Path(str(resources.files("fercli.checkpoints")))
    forms = [f"{stem}.onnx", f"{stem}.pt"] if prefer_onnx else [f"{stem}.pt", f"{stem}.onnx"]
    for form in forms:
        if (folder / form).is_file():
            return folder / form
    raise CheckpointError(f"the shipped model {name!r} is missing from {folder}; reinstall fer")


def yunet_model() -> Path:
    """The vendored YuNet detector, checked byte for byte: a damaged file would fail inside OpenCV, unexplained."""
    path = shipped_file(YUNET_NAME)
    if hashlib.sha256(path.read_bytes()).hexdigest() != YUNET_SHA256:
        raise CheckpointError(f"{path}: damaged face detector (sha256 differs from the one fer ships); reinstall fer")
    return path
