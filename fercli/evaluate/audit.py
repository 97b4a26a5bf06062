"""Images that occur twice: exact and near-duplicate twins within and across splits, and twins whose labels differ.

Finding them is two steps. Candidates: every image shrunk to 12x12 (4x4 block means), all pairs compared at
once as one matrix product (|a|^2 + |b|^2 - 2ab), kept when their root-mean-square difference is under
``COARSE_TOLERANCE`` grey levels. Confirmation: the full images' mean absolute difference under
``TWIN_TOLERANCE`` (FER+'s own matching of the same images found 1.3 for true twins, about 30 for the next
best candidate; see data/README.md in the shared data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COARSE_SIDE = 12
COARSE_TOLERANCE = 8.0  # RMS grey levels between 12x12 thumbnails: generous, the confirmation decides
TWIN_TOLERANCE = 3.0  # mean absolute grey-level difference of the full images


@dataclass(frozen=True)
class Twin:
    a: int  # index in the first set
    b: int  # index in the second set
    difference: float  # mean absolute grey-level difference


def thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] (H, W multiples of 12) -> float32 [N, 144]: 12x12 block means."""
    n, h, w = images.shape
    blocks = images.reshape(n, COARSE_SIDE, h // COARSE_SIDE, COARSE_SIDE, w // COARSE_SIDE).astype(np.float32)
    return blocks.mean(axis=(2, 4)).reshape(n, -1)


def find_twins(first: np.ndarray, second: np.ndarray | None = None, chunk: int = 1024) -> list[Twin]:
    """Twin pairs between two sets of uint8 [N, H, W] images, or within one (``second`` None: pairs a < b)."""
    same = second is None
    second = first if same else second
    if len(first) == 0 or len(second) == 0:
        return []
    a, b = thumbnails(first), thumbnails(second)
    b_norms = (b * b).sum(1)
    twins: list[Twin] = []
    for start in range(0, len(a), chunk):
        part = a[start : start + chunk]
        squared = (part * part).sum(1)[:, None] + b_norms[None, :] - 2 * part @ b.T  # [chunk, M]
        rows, cols = np.nonzero(squared < COARSE_TOLERANCE**2 * a.shape[1])
        rows += start
        if same:
            keep = rows < cols
            rows, cols = rows[keep], cols[keep]
        for i, j in zip(rows.tolist(), cols.tolist()):
            difference = float(np.abs(first[i].astype(np.int16) - second[j].astype(np.int16)).mean())
            if difference < TWIN_TOLERANCE:
                twins.append(Twin(i, j, round(difference, 3)))
    return twins


def has_twin_in(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """bool [N]: which of ``images`` have a twin among ``reference`` (e.g. test images seen in training)."""
    mask = np.zeros(len(images), dtype=bool)
    for twin in find_twins(images, reference):
        mask[twin.a] = True
    return mask
