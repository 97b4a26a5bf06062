"""The original FER-2013 challenge csv: ``emotion,pixels,Usage`` and its variants.

Handles fer2013.csv, icml_face_data.csv (``emotion, Usage, pixels`` with spaces) and
torchvision's train.csv/test.csv. The csv numbers classes angry, disgust, fear, happy, sad,
surprise, neutral; labels are remapped to the alphabetical order the folder layout uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fercli.errors import DataError
from fercli.faces.images import resize_square

# The challenge csv numbers classes in this order; fer uses the alphabetical folder order.
CSV_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The same three words name FER-2013's splits in the csv's Usage column and in the Kaggle file-name prefixes.
SPLIT_NAMES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def read_csv_splits(files: list[Path], size: int, channels: int, classes: tuple[str, ...]):
    """Return ({split: (images, labels, sources, size, channels)}, bad rows)."""
    import pandas as pd

    index = {name: i for i, name in enumerate(classes)}
    csv_to_ours = np.array([index[name] for name in CSV_CLASSES])
    groups: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in ("train", "val", "test")}
    bad: list[str] = []
    for path in files:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable csv ({exc})") from None
        frame.columns = [c.strip().lower() for c in frame.columns]
        if "pixels" not in frame.columns:
            raise DataError(f"{path}: columns {list(frame.columns)}; expected emotion,pixels[,Usage]")
        if "emotion" not in frame.columns:
            continue  # Kaggle's unlabeled test.csv: nothing to train or score on
        default_split = "test" if path.stem.lower() == "test" else "train"
        for row, (emotion, pixels, usage) in enumerate(_rows(frame), start=2):
            source = f"{path}:{row}"
            try:
                label = _parse_label(emotion)
                image = _parse_pixels(pixels, channels, size)
            except ValueError as exc:
                bad.append(f"{source}: {exc}")
                continue
            split = SPLIT_NAMES.get(usage.strip(), default_split)
            images, labels, sources = groups[split]
            images.append(image)
            labels.append(int(csv_to_ours[label]))
            sources.append(source)
    return {name: (*parts, size, channels) for name, parts in groups.items()}, bad


def _rows(frame):
    usage = frame["usage"] if "usage" in frame.columns else [""] * len(frame)
    return zip(frame["emotion"], frame["pixels"], usage)


def _parse_label(text: str) -> int:
    try:
        label = int(text.strip())
    except ValueError:
        raise ValueError(f"emotion {text!r} is not a number 0-6") from None
    if not 0 <= label < len(CSV_CLASSES):
        raise ValueError(f"emotion {label} is outside 0-6")
    return label


def _parse_pixels(text: str, channels: int, size: int) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError("pixels contain something other than numbers") from None
    if values.size != 48 * 48:
        raise ValueError(f"pixels has {values.size} values, expected 2304 (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixel values outside 0-255")
    image = resize_square(values.reshape(48, 48).astype(np.uint8), size)
    return np.repeat(image[..., None], 3, axis=2) if channels == 3 else image
