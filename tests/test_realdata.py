"""Checks on the real FER-2013 (at ../shared/data/fer2013); skipped with a reason when it is absent."""

import torch

from conftest import SHARED_DATA, requires_real_data
from fercli.config import DataConfig
from fercli.data.dataset import FER_CLASSES, load_dataset

pytestmark = requires_real_data


def test_canonical_splits_and_class_order():
    data = load_dataset(DataConfig(root=str(SHARED_DATA)))
    assert data.classes == FER_CLASSES
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 28_709, "val": 3_589, "test": 3_589}
    assert all("/happy/" in s for s, y in zip(data.splits["test"].sources, data.splits["test"].labels.tolist())
               if y == FER_CLASSES.index("happy"))


def test_shipped_model_beats_the_seed_on_privatetest():
    from fercli.model.checkpoint import load_model
    from fercli.model.torch_backend import predict_logits
    from fercli.model.shipped import default_checkpoint

    loaded = load_model(default_checkpoint(), torch.device("cpu"))
    test = load_dataset(DataConfig(root=str(SHARED_DATA))).splits["test"]
    logits = predict_logits(loaded.model, test.images, loaded.preprocess, torch.device("cpu"))
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.56  # the seed project's final test accuracy
