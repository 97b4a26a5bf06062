"""Tiny synthetic datasets in every layout fer reads, written fresh by each test that needs one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
CSV_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013"


def class_image(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Class = brightness (learnable by any CNN) and = the row of a white band (checkable by tests)."""
    image = (20 + 30 * label + rng.integers(0, 25, (size, size))).astype(np.uint8)
    row = 3 + label * (size - 8) // len(CLASSES)
    image[row : row + 5, :] = 255
    return image


def write_fer_folders(root: Path, per_class=(8, 3, 3), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        for prefix, folder, count in (("Training", "train", per_class[0]), ("PublicTest", "test", per_class[1]),
                                      ("PrivateTest", "test", per_class[2])):
            out = root / folder / name
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(class_image(label, rng)).save(out / f"{prefix}_{label}{i:03d}.jpg", quality=95)
    return root


def write_csv(path: Path, per_class: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for csv_label, name in enumerate(CSV_ORDER):
            for _ in range(per_class):
                pixels = " ".join(map(str, class_image(CLASSES.index(name), rng).ravel()))
                lines.append(f"{csv_label},{pixels},{usage}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_class_folders(root: Path, classes=("happy", "sad"), per_class: int = 10, seed: int = 0) -> Path:
    """Any size, colour, format: the generic layout."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            gray = np.array(Image.fromarray(class_image(CLASSES.index(name) if name in CLASSES else label, rng)).resize((64 + i, 64 + i)))
            rgb = np.stack([gray, gray, gray], axis=2)
            Image.fromarray(rgb).save(root / name / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root


def tiny_overrides(root: Path, project: Path, epochs: int = 2) -> list[str]:
    """A model and run small enough to train in about a second."""
    return [
        f"data.root={root}",
        f"train.project={project}",
        f"train.epochs={epochs}",
        "train.batch_size=8",
        "train.name=tiny",
        "model.name=vgg",
        "model.args={widths: [4, 8], depth: 1, dropout: 0.0}",
        "augment.crop=44",
        "augment.flip=true",
        "augment.erase=0.5",
        "optim.lr=0.05",
    ]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache/fer from tests."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def fer_folders(tmp_path) -> Path:
    return write_fer_folders(tmp_path / "fer2013")


@pytest.fixture
def trained_checkpoint(tmp_path, fer_folders) -> Path:
    from fercli.config import load_config
    from fercli.data.dataset import load_dataset
    from fercli.train.loop import SilentReporter, fit
    from fercli.runs import new_run_dir

    import torch

    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=2))
    run_dir = new_run_dir(cfg.train.project, "tiny")
    fit(cfg, load_dataset(cfg.data), run_dir, torch.device("cpu"), SilentReporter())
    return run_dir / "best.pt"


requires_real_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"FER-2013 not found at {SHARED_DATA}")
