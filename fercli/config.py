"""Experiment configuration: a tree of typed, frozen dataclasses.

Precedence: dataclass defaults < YAML file < ``key=value`` overrides. The type hints are the
schema; an unknown key or a value of the wrong type fails here, with its dotted path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fercli.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # a FER-2013 folder or csv, or class folders: --data PATH or data.root=PATH
    image_size: int = 48  # images are decoded (and cached) at this size
    channels: int = 1  # 1 = gray, 3 = RGB
    val_fraction: float = 0.1  # only used when the data has no validation split of its own
    cache_dir: str = ""  # empty: $FER_CACHE_DIR or ~/.cache/fer
    skip_bad: bool = False  # skip unreadable images with a warning instead of stopping
    labels: str = "fer2013"  # fer2013: the folders' labels; ferplus: FER+'s crowd majority, 8 classes (see ferplus.py)
    targets: str = "majority"  # with labels=ferplus: train on the majority label, or on the vote distribution ("votes");
    # with labels=fer2013, "mixed": each training target is (1 - vote_weight) x the label + vote_weight x FER+'s votes
    vote_weight: float = 0.5
    # crops: every image is a face crop already (FER-2013); detect: every image is a photo, cropped to its largest face
    # by fer predict's own detector, alignment and framing (images with no face found are kept, marked as missed)
    faces: str = "crops"


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 0  # train on random crops of this size, evaluate on the centre crop; 0 = no crop
    flip: bool = False
    rotate: float = 0.0  # max degrees
    scale: float = 0.0  # max relative zoom in or out
    shift: float = 0.0  # extra max shift, in pixels, on top of the crop's own
    erase: float = 0.0  # probability of random erasing per image
    # Move crops by whole pixels only. With no rotate/scale either, every training image is then pixel for pixel one
    # of the views the TTA sees, not a resampled (slightly blurred) one: a FixRes-style last stretch of training.
    snap: bool = False
    mixup: float = 0.0  # mixup Beta(alpha, alpha); 0 = off
    # Capture conditions, drawn per image (0 = off): gamma and contrast as log-factors up to +-, brightness as a
    # shift up to +- that share of full scale, blur the probability of a Gaussian blur (sigma 0.5-1.5 px), noise the
    # largest standard deviation of pixel noise, as a share of full scale.
    gamma: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    cutmix: float = 0.0  # CutMix Beta(alpha, alpha); 0 = off; with mixup too, each batch uses one of them


@dataclass(frozen=True)
class ModelConfig:
    name: str = "vgg"
    args: dict[str, Any] = field(default_factory=dict)  # passed to the model's constructor


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"  # adam | adamw | sgd (Nesterov)
    lr: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "cosine"  # constant | multistep | cosine | onecycle
    milestones: tuple[int, ...] = ()  # multistep: epochs where the LR is multiplied by gamma
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    class_weights: bool = False  # weight the loss by inverse class frequency
    clip_grad: float = 0.0  # max gradient norm; 0 = off


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 512
    seed: int = 0
    name: str = ""  # run folder name; empty: the config file's stem
    project: str = "runs/train"
    init: str = ""  # checkpoint whose weights start the run (fine-tuning); same model and classes as this recipe
    teacher: tuple[str, ...] = ()  # checkpoints to distil from (probabilities averaged)
    distill_temperature: float = 4.0
    distill_weight: float = 0.5
    teacher_flip: bool = False  # teachers also see the mirrored batch; their targets are the two views' average
    # The teachers' passes (not the student's) in bf16 autocast on CPUs with AMX: with five flip-averaged teachers a
    # distillation ran 1.65x faster on 2 Xeon cores (benchmarks/distill_throughput.py), probabilities within 0.005.
    teacher_bf16: bool = False
    # Teachers label each training image once, before epoch 1 (flip-averaged, kept in the run folder), instead of
    # every augmented batch: training then runs at the student's own speed. The target is
    # (1 - distill_weight) x label + distill_weight x softmax(teacher log-probability / distill_temperature).
    distill_offline: bool = False
    # Stochastic weight averaging: from the end of this epoch (1-based) on, the weights at each epoch's end are
    # averaged; the average (BatchNorm statistics measured again) is validated every epoch and saved as swa.pt.
    # Best with a constant learning rate over those epochs (optim.schedule=constant). 0 = off.
    swa_start: int = 0
    # Also keep every Nth epoch's weights as epochN.pt (a checkpoint like best.pt), to score a run's epochs on the
    # cross-dataset suite afterwards: the epoch best on FER-2013 need not be the one best on faces from elsewhere.
    # 0 = off.
    save_period: int = 0
    calibrate: bool = True  # fit a softmax temperature on the validation split at the end


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # torch CPU threads; 0 = torch's default
    channels_last: bool = True
    amp: bool = True  # bf16 autocast on CUDA
    cpu_bf16: bool = False  # bf16 autocast on CPUs with AMX: faster, measured slightly less accurate (device.autocast_dtype)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def packaged_configs() -> dict[str, Path]:
    """The recipes that ship inside the package (the repository's configs/ folder, installed as fercli.configs)."""
    from importlib.resources import files

    folder = Path(str(files("fercli.configs")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_config(value: str | Path) -> Path:
    """A config file: the path when it exists, else the packaged recipe of that name (``quick``, ``quick.yaml``
    or ``configs/quick.yaml``), so README's commands also work from a pip install."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    packaged = packaged_configs()
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if path.parent.name in ("", "configs") and name in packaged:
        return packaged[name]
    raise ConfigError(f"config file not found: {value} (give a YAML file, or a packaged recipe: {', '.join(packaged)})")


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file (a path or a packaged recipe's name), then ``a.b=value`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = read_yaml(find_config(path))
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(tree, key, value)
    return config_from_dict(tree)


FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def config_from_dict(tree: dict[str, Any]) -> Config:
    return check_ranges(build_dataclass(Config, tree, ""))


# (dotted key, test, what a valid value is): a wrong number fails here, not as a traceback deep in a run.
RANGES: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("data.image_size", lambda v: 8 <= v <= 1024, "from 8 to 1024 pixels"),
    ("data.channels", lambda v: v in (1, 3), "1 (gray) or 3 (RGB)"),
    ("data.val_fraction", lambda v: 0 < v < 0.9, "between 0 and 0.9"),
    ("data.labels", lambda v: v in ("fer2013", "ferplus"), "fer2013 or ferplus"),
    ("data.targets", lambda v: v in ("majority", "votes", "mixed"),
     "majority, votes (needs data.labels=ferplus) or mixed (needs data.labels=fer2013)"),
    ("data.vote_weight", lambda v: 0 <= v <= 1, "0 to 1"),
    ("data.faces", lambda v: v in ("crops", "detect"), "crops (images are face crops) or detect (photos: find the face)"),
    ("augment.erase", lambda v: 0 <= v <= 1, "a probability, 0 to 1"),
    ("augment.rotate", lambda v: 0 <= v <= 180, "0 to 180 degrees"),
    ("augment.scale", lambda v: 0 <= v < 1, "0 or more, below 1"),
    ("augment.shift", lambda v: v >= 0, "0 or more pixels"),
    ("augment.mixup", lambda v: v >= 0, "0 (off) or a positive alpha"),
    ("augment.gamma", lambda v: 0 <= v <= 2, "0 (off) to 2 (a log-factor)"),
    ("augment.contrast", lambda v: 0 <= v <= 2, "0 (off) to 2 (a log-factor)"),
    ("augment.brightness", lambda v: 0 <= v <= 1, "0 (off) to 1 (a share of full scale)"),
    ("augment.blur", lambda v: 0 <= v <= 1, "a probability, 0 to 1"),
    ("augment.noise", lambda v: 0 <= v <= 0.5, "0 (off) to 0.5 (a share of full scale)"),
    ("augment.cutmix", lambda v: v >= 0, "0 (off) or a positive alpha"),
    ("optim.lr", lambda v: v > 0, "a positive number"),
    ("optim.weight_decay", lambda v: v >= 0, "0 or more"),
    ("optim.momentum", lambda v: 0 <= v < 1, "0 or more, below 1"),
    ("optim.gamma", lambda v: v > 0, "a positive number"),
    ("optim.warmup_epochs", lambda v: v >= 0, "0 or more"),
    ("optim.label_smoothing", lambda v: 0 <= v < 1, "0 or more, below 1"),
    ("optim.clip_grad", lambda v: v >= 0, "0 (off) or a positive norm"),
    ("train.epochs", lambda v: v >= 1, "1 or more"),
    ("train.batch_size", lambda v: v >= 1, "1 or more"),
    ("train.eval_batch_size", lambda v: v >= 1, "1 or more"),
    ("train.distill_temperature", lambda v: v > 0, "a positive number"),
    ("train.distill_weight", lambda v: 0 <= v <= 1, "0 to 1"),
    ("train.save_period", lambda v: v >= 0, "0 (off) or every how many epochs"),
    ("runtime.threads", lambda v: v >= 0, "0 (torch's default) or more"),
)


def check_ranges(cfg: Config) -> Config:
    for key, valid, meaning in RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not valid(value):
            raise ConfigError(f"{key}={value!r}: must be {meaning}")
    if cfg.data.targets == "votes" and cfg.data.labels != "ferplus":
        raise ConfigError("data.targets=votes: vote distributions come from FER+; set data.labels=ferplus too")
    if cfg.data.targets == "mixed" and cfg.data.labels != "fer2013":
        raise ConfigError("data.targets=mixed: mixes FER+'s votes into FER-2013's labels; set data.labels=fer2013")
    if cfg.data.faces == "detect" and cfg.data.channels != 1:
        raise ConfigError("data.faces=detect: the face pipeline makes gray crops; set data.channels=1")
    crop, size = cfg.augment.crop, cfg.data.image_size
    if crop and not 8 <= crop <= size:
        raise ConfigError(f"augment.crop={crop!r}: must be 0 (no crop) or from 8 to data.image_size ({size})")
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain data (lists, not tuples) so it fits YAML and ``weights_only`` checkpoints."""
    return _plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (give a YAML file, e.g. configs/quick.yaml)")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data:, model:, ...) at the top")
    return tree


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=3)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # fall back to the literal string; type checking happens later
    return key.strip(), value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def build_dataclass(cls: type, tree: Any, prefix: str) -> Any:
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {tree!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{_suggest(key, names, prefix)}")
        kwargs[key] = coerce(value, hints[key], path)
    return cls(**kwargs)


def coerce(value: Any, hint: Any, path: str) -> Any:
    """Check ``value`` against the type hint and convert where lossless (int -> float, list -> tuple)."""
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path + ".")
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(coerce(v, item_type, f"{path}[{i}]") for i, v in enumerate(items))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-3 as a string
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{path}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _suggest(key: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return f" (valid keys: {', '.join(prefix + n for n in names)})"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
