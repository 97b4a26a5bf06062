"""Datasets: read FER-2013 (folders or csv) or any class-folder dataset into uint8 tensors, once.

The first load decodes every image into one uint8 tensor per split and caches it under a key
that fingerprints the source files; later loads read that cache in well under a second.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fercli.config import DataConfig
from fercli.data.csvdata import SPLIT_NAMES, read_csv_splits
from fercli.errors import DataError, InputError
from fercli.faces.images import is_image_path, read_image, resize_square
from fercli.runs import write_atomic

FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # folders sort alphabetically
CACHE_VERSION = "1"


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # [N, C, H, W] uint8
    labels: torch.Tensor  # [N] int64, indices into Dataset.classes
    sources: list[str]  # file path or "file.csv:row" per image
    soft: torch.Tensor | None = None  # [N, K] float target distributions (FER+ votes), when training on them
    found: torch.Tensor | None = None  # [N] bool, photos through the face pipeline only: was a face found (data.faces)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    classes: tuple[str, ...]
    splits: dict[str, Split]
    fingerprint: str
    layout: str  # fer-folders | class-folders | csv
    bad: tuple[str, ...]  # "source: reason" for each image that could not be read

    def split(self, name: str) -> Split:
        """A split by name; "all" is every image of the dataset (to score an outside test set as a whole)."""
        if name == "all":
            parts = [s for s in self.splits.values() if len(s)]
            soft = torch.cat([s.soft for s in parts]) if all(s.soft is not None for s in parts) else None
            found = torch.cat([s.found for s in parts]) if all(s.found is not None for s in parts) else None
            return Split(torch.cat([s.images for s in parts]), torch.cat([s.labels for s in parts]),
                         [src for s in parts for src in s.sources], soft, found)
        if name not in self.splits or len(self.splits[name]) == 0:
            have = ", ".join(k for k, v in self.splits.items() if len(v)) or "none"
            raise DataError(f"the data has no {name!r} split (it has: {have}); pick another with --split")
        return self.splits[name]

    def found_only(self, warn: Warn) -> Dataset:
        """Photos through the face pipeline without those where no face was found (to train on)."""
        missed = sum(int((~s.found).sum()) for s in self.splits.values() if s.found is not None)
        if not missed:
            return self
        warn(f"{missed} image(s) with no face found are left out of training and validation")
        return dataclasses.replace(self, splits={k: s if s.found is None else _subset(s, s.found.numpy())
                                                 for k, s in self.splits.items()})


Warn = Callable[[str], None]


def load_dataset(cfg: DataConfig, warn: Warn = lambda _msg: None) -> Dataset:
    """Read the dataset at ``cfg.root``, from the cache when the files have not changed."""
    if not cfg.root:
        raise DataError("no data given: pass --data PATH (or data.root=PATH): a FER-2013 folder or csv, or class folders")
    root = Path(cfg.root).expanduser()
    if not root.exists():
        raise DataError(f"data not found: {root} (set data.root=PATH or --data PATH to the FER-2013 folder or csv)")
    layout, files = find_source_files(root)
    fingerprint = fingerprint_files(root, layout, files, cfg)
    cache_path = resolve_cache_dir(cfg) / f"{fingerprint}.pt"
    dataset = read_cache(cache_path, warn) if cache_path.is_file() else None
    if dataset is None:
        dataset = decode_dataset(root, layout, files, cfg, fingerprint)
        write_cache(dataset, cache_path, warn)
    return check_bad_images(dataset, cfg, warn)


def find_source_files(root: Path) -> tuple[str, list[Path]]:
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root}: a data file must be a FER-2013 csv; otherwise give a folder")
        return "csv", [root]
    if (root / "train").is_dir():
        refuse_unreadable_folders(root, levels=2)
        return "fer-folders", sorted(p for p in root.glob("*/*/*") if p.is_file() and is_image_path(p))
    csvs = sorted(p for p in root.glob("*.csv"))
    if csvs and not any(p.is_dir() for p in root.iterdir()):
        return "csv", csvs
    refuse_unreadable_folders(root, levels=1)
    files = sorted(p for p in root.glob("*/**/*") if p.is_file() and is_image_path(p))
    if not files and any(is_image_path(p) for p in root.iterdir()):
        raise DataError(f"{root}: images sit directly in this folder; put them in one sub-folder per class (<class>/*.jpg)")
    if not files:
        raise DataError(
            f"{root}: no images found; expected train/<class>/*.jpg, <class>/*.jpg or a FER-2013 csv"
        )
    return "class-folders", files


def refuse_unreadable_folders(root: Path, levels: int) -> None:
    """Every folder down to the class folders (``levels`` below ``root``) must be listable: glob skips one it
    cannot read (no permission, a link to nowhere) without a word, and its class would vanish from the model."""
    problems: list[str] = []
    current = [root]
    for depth in range(levels + 1):
        below = []
        for folder in current:
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                problems.append(f"{folder} ({exc.strerror or exc})")
                continue
            if depth == levels:
                continue  # a class folder: listing it was the check
            for entry in entries:
                if entry.is_dir():
                    below.append(Path(entry.path))
                elif entry.is_symlink() and not os.path.exists(entry.path):
                    problems.append(f"{entry.path} (a link to a missing folder)")
        current = below
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise DataError(f"cannot read {problems[0]}{more}; its images would silently drop out of the data: fix the "
                        f"permissions (chmod -R u+rX) or move the folder away")


def fingerprint_files(root: Path, layout: str, files: list[Path], cfg: DataConfig) -> str:
    # Resolve the root once, not every file: resolve() per file was half of a cached load.
    base = root.resolve()
    # The root and layout are part of the key: the same files read as data/ and as data/test/ are other datasets.
    key = f"{CACHE_VERSION}|{cfg.image_size}|{cfg.channels}|{cfg.val_fraction}|{base}|{layout}"
    if cfg.faces == "detect":  # other images altogether: the crops of the pipeline of this version
        from fercli.data.photos import PIPELINE_VERSION

        key += f"|faces=detect|pipeline {PIPELINE_VERSION}"
    digest = hashlib.sha1(key.encode())
    for path in files:
        stat = path.stat()
        absolute = base if path == root else base / path.relative_to(root)
        digest.update(f"{absolute}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def resolve_cache_dir(cfg: DataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get("FER_CACHE_DIR"):
        return Path(os.environ["FER_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fer"


def decode_dataset(root: Path, layout: str, files: list[Path], cfg: DataConfig, fingerprint: str) -> Dataset:
    if layout == "csv":
        classes = FER_CLASSES
        raw, bad = read_csv_splits(files, cfg.image_size, cfg.channels, classes)
    else:
        classes, raw, bad = decode_folder_splits(root, layout, files, cfg)
    splits = {name: _to_split(*parts) for name, parts in raw.items()}
    if "val" not in splits or len(splits["val"]) == 0:
        splits["train"], splits["val"] = stratified_holdout(splits["train"], cfg.val_fraction)
    if layout == "class-folders":
        # A bare class-folder pool: hold out a test slice the same way as val.
        splits["train"], splits["test"] = stratified_holdout(splits["train"], cfg.val_fraction)
    return Dataset(tuple(classes), splits, fingerprint, layout, tuple(bad))


def decode_folder_splits(root: Path, layout: str, files: list[Path], cfg: DataConfig):
    """Class = parent folder name; split from the file name prefix, else from train/ vs test/."""
    classes = sorted({class_of(p, root, layout) for p in files})
    if layout == "fer-folders":
        check_same_classes(root, files)
    index = {name: i for i, name in enumerate(classes)}
    groups: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for path in files:
        groups[split_of(path, root, layout)].append(path)
    raw, bad = {}, []
    for name, paths in groups.items():
        images, labels, sources, found = decode_files(paths, root, layout, index, cfg, bad)
        raw[name] = (images, labels, sources, cfg.image_size, cfg.channels, found)
    return classes, raw, bad


def check_same_classes(root: Path, files: list[Path]) -> None:
    """train/ and test/ must name the same classes: "Happy" beside "happy" would become a class never trained."""
    by_folder: dict[str, set[str]] = {}
    for path in files:
        top, name = path.relative_to(root).parts[:2]
        by_folder.setdefault(top, set()).add(name)
    train = by_folder.get("train", set())
    for folder, names in sorted(by_folder.items()):
        extra = sorted(names - train)
        if folder != "train" and extra:
            raise DataError(f"{root / folder}: class folder(s) {extra} are not in {root / 'train'} (it has "
                            f"{', '.join(sorted(train))}); rename them to match")


def class_of(path: Path, root: Path, layout: str) -> str:
    """The class folder: root/<class>/... or root/<train|test>/<class>/..., however deep the file."""
    return path.relative_to(root).parts[1 if layout == "fer-folders" else 0]


def split_of(path: Path, root: Path, layout: str) -> str:
    prefix = path.name.split("_", 1)[0]
    if prefix in SPLIT_NAMES:
        return SPLIT_NAMES[prefix]
    if layout == "fer-folders":
        return "test" if path.relative_to(root).parts[0] == "test" else "train"
    return "train"


def decode_files(paths: list[Path], root: Path, layout: str, index: dict[str, int], cfg: DataConfig, bad: list[str]):
    """(images, labels, sources, found): found is None for crops, a bool per image for photos (data.faces=detect)."""
    if cfg.faces == "detect":
        from fercli.data.photos import PhotoCropper

        decode = PhotoCropper(cfg.image_size).crop
    else:
        decode = functools.partial(read_crop, size=cfg.image_size, gray=cfg.channels == 1)
    images, labels, sources, found = [], [], [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for path, (arr, face, error) in zip(paths, pool.map(decode, paths, chunksize=16)):
            if error is not None:
                bad.append(error)
                continue
            images.append(arr)
            labels.append(index[class_of(path, root, layout)])
            sources.append(str(path))
            found.append(face)
    return images, labels, sources, (found if cfg.faces == "detect" else None)


def read_crop(path: Path, *, size: int, gray: bool) -> tuple[np.ndarray | None, bool, str | None]:
    """(image [S, S(, 3)] uint8, True, error): an image that is a face crop already, resized."""
    try:
        return resize_square(read_image(path, gray=gray), size), True, None
    except InputError as exc:
        return None, True, str(exc)


def _to_split(images: list[np.ndarray] | np.ndarray, labels, sources, size: int, channels: int, found=None) -> Split:
    if len(images) == 0:
        batch = torch.zeros((0, channels, size, size), dtype=torch.uint8)
    else:
        batch = torch.from_numpy(np.stack(images))
        batch = batch.unsqueeze(1) if batch.ndim == 3 else batch.permute(0, 3, 1, 2)
    return Split(batch.contiguous(), torch.as_tensor(labels, dtype=torch.int64), list(sources),
                 found=None if found is None else torch.as_tensor(found, dtype=torch.bool))


def stratified_holdout(split: Split, fraction: float, seed: int = 0) -> tuple[Split, Split]:
    """Move a seeded ``fraction`` of each class out of ``split``; the data split never depends on train.seed."""
    rng = np.random.default_rng(seed)
    labels = split.labels.numpy()
    held = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        held.extend(members[: int(round(fraction * len(members)))])
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return _subset(split, ~mask), _subset(split, mask)


def _subset(split: Split, mask: np.ndarray) -> Split:
    keep = torch.from_numpy(np.flatnonzero(mask))
    return Split(split.images[keep], split.labels[keep], [split.sources[i] for i in keep.tolist()],
                 None if split.soft is None else split.soft[keep], None if split.found is None else split.found[keep])


def check_bad_images(dataset: Dataset, cfg: DataConfig, warn: Warn) -> Dataset:
    if not dataset.bad:
        return dataset
    first = dataset.bad[0]
    if not cfg.skip_bad:
        raise DataError(
            f"{len(dataset.bad)} unreadable image(s) in the data, e.g. {first}; "
            "fix or remove them, or pass data.skip_bad=true to skip them"
        )
    warn(f"skipping {len(dataset.bad)} unreadable image(s), e.g. {first}")
    return dataset


def write_cache(dataset: Dataset, path: Path, warn: Warn = lambda _msg: None) -> None:
    payload = {
        "classes": list(dataset.classes),
        "layout": dataset.layout,
        "fingerprint": dataset.fingerprint,
        "bad": list(dataset.bad),
        "splits": {k: {"images": s.images, "labels": s.labels, "sources": s.sources,
                       **({} if s.found is None else {"found": s.found})} for k, s in dataset.splits.items()},
    }
    try:
        write_atomic(path, lambda tmp: torch.save(payload, tmp))
    except OSError as exc:  # a read-only or full disk, or a file where the folder should be: work on, uncached
        warn(f"could not write the decode cache {path} ({exc.strerror or exc}); the next load decodes again "
             "(set FER_CACHE_DIR to a writable folder)")


def read_cache(path: Path, warn: Warn = lambda _msg: None) -> Dataset | None:
    """The cached dataset, or None (with a warning) when the file is damaged: it is then decoded again."""
    try:
        payload = torch.load(path, weights_only=True)
        splits = {k: Split(v["images"], v["labels"], list(v["sources"]), found=v.get("found"))
                  for k, v in payload["splits"].items()}
        return Dataset(tuple(payload["classes"]), splits, payload["fingerprint"], payload["layout"], tuple(payload["bad"]))
    except Exception as exc:  # truncated zip, unpickling error, missing keys: any damage means "decode again"
        warn(f"decode cache {path} is damaged ({type(exc).__name__}); decoding the images again")
        return None
