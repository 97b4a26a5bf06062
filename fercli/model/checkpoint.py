"""Self-describing checkpoints: plain data only, so ``torch.load(weights_only=True)`` reads them."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fercli import __version__
from fercli.model.preprocess import Preprocess
from fercli.errors import CheckpointError
from fercli.model.nets import count_parameters, create_model
from fercli.runs import write_atomic

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "state_dict", "classes", "preprocess")


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    classes: tuple[str, ...]
    preprocess: Preprocess
    temperature: float
    meta: dict[str, Any]  # the whole checkpoint minus the weights

    # The same face as onnx_backend.OnnxClassifier, so eval and visualize take either.
    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @property
    def channels(self) -> int:
        return self.preprocess.channels

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)


def build_checkpoint(model: nn.Module, model_name: str, model_args: dict, classes, pre: Preprocess, **extra) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "fer_version": __version__,
        "model": {"name": model_name, "args": dict(model_args)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(classes),
        "preprocess": pre.to_dict(),
        "temperature": 1.0,
        **extra,
    }


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one with fer train, or omit --checkpoint for the shipped model)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file written by torch.save)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        raise CheckpointError(
            f"{path}: refused to load: it holds Python objects that could run code ({culprit[:100] or 'unsafe pickle'}); "
            "only fer checkpoints (plain tensors and data) are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0][:120]})") from None
    return check_format(payload, path)


def check_format(payload: Any, path: Path) -> dict:
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a fer checkpoint (no model description); was it saved by fer train?")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version}, this fer reads format {FORMAT_VERSION}; "
            f"use the fer version that wrote it ({payload.get('fer_version', 'unknown')})"
        )
    return payload


def load_model(path: str | Path, device: torch.device) -> LoadedModel:
    payload = read_checkpoint(path)
    spec = payload["model"]
    try:
        model = create_model(spec["name"], **spec["args"])
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # a mismatch between description and weights: the file is damaged
        raise CheckpointError(f"{path}: weights do not fit model {spec['name']!r} ({str(exc).splitlines()[0][:120]})") from None
    broken = [k for k, t in payload["state_dict"].items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:  # a diverged training: every prediction would be NaN (and --json would print invalid JSON)
        raise CheckpointError(f"{path}: {len(broken)} weight tensor(s) hold NaN or infinity (e.g. {broken[0]}); the "
                              "training that wrote it diverged: train again with a lower optim.lr")
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "optimizer")}
    pre = Preprocess(**payload["preprocess"])
    return LoadedModel(model, tuple(payload["classes"]), pre, float(payload.get("temperature", 1.0)), meta)


def training_data_root(meta: dict[str, Any]) -> str | None:
    """Where the model's training data was, from its resolved config (ONNX exports carry none)."""
    return meta.get("config", {}).get("data", {}).get("root")


def file_fingerprint(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
