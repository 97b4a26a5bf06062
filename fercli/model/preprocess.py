"""A model's input contract: stored in every checkpoint and export, so inference never guesses.

Not augmentation: the same numbers describe how eval, predict and the ONNX graph prepare a face crop.
No torch here: ``fer predict`` reads it without importing PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preprocess:
    """What a model expects; stored in every checkpoint so inference never guesses."""

    image_size: int  # stored image side (e.g. 48)
    input_size: int  # model input side (the centre crop at eval time)
    channels: int
    mean: float
    std: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)
