import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLASSES, class_image, write_class_folders, write_csv
from fercli.config import DataConfig
from fercli.data.dataset import load_dataset
from fercli.errors import DataError


def test_fer_folders_split_by_file_name(fer_folders):
    data = load_dataset(DataConfig(root=str(fer_folders)))
    assert data.layout == "fer-folders"
    assert data.classes == CLASSES
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 56, "val": 21, "test": 21}
    assert data.splits["train"].images.shape[1:] == (1, 48, 48)
    assert data.splits["train"].images.dtype == torch.uint8
    assert all("PrivateTest_" in s for s in data.splits["test"].sources)


def test_csv_class_order_is_remapped(tmp_path):
    data = load_dataset(DataConfig(root=str(write_csv(tmp_path / "fer2013.csv", per_class=2))))
    assert data.layout == "csv" and data.classes == CLASSES
    train = data.splits["train"]
    # The synthetic pattern encodes the true class: the label must match the band position.
    for image, label in zip(train.images, train.labels):
        band_row = int(image[0].float().mean(1).argmax())
        expected = class_image(int(label), np.random.default_rng(0))
        assert abs(band_row - int(expected.mean(1).argmax())) <= 4
    assert torch.bincount(train.labels, minlength=7).tolist() == [2] * 7
    assert len(data.splits["val"]) == 14 and len(data.splits["test"]) == 14


def test_icml_variant_header_with_spaces(tmp_path):
    csv = write_csv(tmp_path / "data" / "icml_face_data.csv", per_class=1)
    text = csv.read_text().replace("emotion,pixels,Usage", "emotion, pixels, Usage", 1)
    csv.write_text(text)
    data = load_dataset(DataConfig(root=str(tmp_path / "data")))
    assert len(data.splits["train"]) == 7


def test_generic_class_folders_any_size_and_colour(tmp_path):
    root = write_class_folders(tmp_path / "faces", per_class=10)
    data = load_dataset(DataConfig(root=str(root), val_fraction=0.2))
    assert data.layout == "class-folders" and data.classes == ("happy", "sad")
    assert sum(len(s) for s in data.splits.values()) == 20
    assert len(data.splits["val"]) == 4 and len(data.splits["test"]) == 4
    assert data.splits["train"].images.shape[1:] == (1, 48, 48)


def test_cache_is_reused_and_invalidated(fer_folders, monkeypatch):
    import fercli.data.dataset

    cfg = DataConfig(root=str(fer_folders))
    first = load_dataset(cfg)

    def no_decoding(*_args):
        raise AssertionError("decoded again: the cache was not used")

    with monkeypatch.context() as patch:  # how fast a cached load is: benchmarks/data_load.py
        patch.setattr(fercli.data.dataset, "decode_dataset", no_decoding)
        second = load_dataset(cfg)
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.splits["train"].images, first.splits["train"].images)
    victim = next((fer_folders / "train" / "happy").iterdir())
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(victim)
    assert load_dataset(cfg).fingerprint != first.fingerprint


def test_bad_images_stop_or_are_skipped(fer_folders):
    (fer_folders / "train" / "happy" / "Training_broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"1 unreadable image\(s\).*data.skip_bad=true"):
        load_dataset(DataConfig(root=str(fer_folders)))
    warnings = []
    data = load_dataset(DataConfig(root=str(fer_folders), skip_bad=True), warn=warnings.append)
    assert len(data.splits["train"]) == 56 and "skipping 1" in warnings[0]


def test_missing_and_empty_data(tmp_path):
    with pytest.raises(DataError, match="data not found"):
        load_dataset(DataConfig(root=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(DataConfig(root=str(tmp_path / "empty")))


def test_cache_key_includes_the_root_and_layout(tmp_path):
    """The same files read as data/ (one class folder, "test") and as data/test/ (7 classes) are two datasets."""
    from conftest import write_fer_folders

    root = write_fer_folders(tmp_path / "data")
    import shutil

    shutil.rmtree(root / "train")  # only test/<class>/ is left: data/ is now a pool with one class folder, "test"
    as_pool = load_dataset(DataConfig(root=str(root / "test")))
    whole = load_dataset(DataConfig(root=str(root)))  # the same files: it used to get the first decoding back
    assert len(as_pool.classes) == 7 and whole.classes == ("test",)


def test_damaged_or_unwritable_cache_warns_and_goes_on(fer_folders, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE_DIR", str(cache))
    first = load_dataset(DataConfig(root=str(fer_folders)))
    [cached] = list(cache.glob("*.pt"))
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated
    warnings = []
    again = load_dataset(DataConfig(root=str(fer_folders)), warn=warnings.append)
    assert torch.equal(again.splits["train"].images, first.splits["train"].images)
    assert any("damaged" in w for w in warnings) and cached.stat().st_size > 1000  # rebuilt
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FER_CACHE_DIR", str(blocker))
    warnings.clear()
    third = load_dataset(DataConfig(root=str(fer_folders)), warn=warnings.append)
    assert len(third.splits["train"]) == len(first.splits["train"]) and any("could not write" in w for w in warnings)
    assert not list(tmp_path.glob("**/.*.tmp*"))  # no temporary file left behind
