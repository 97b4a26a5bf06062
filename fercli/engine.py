"""Training and evaluation loops. ``fit`` reads as the list of steps a training run takes."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fercli.augment import augment_batch, cutmix, mixup
from fercli.averaging import WeightAverage, recompute_batchnorm
from fercli.calibration import calibrate_best
from fercli.checkpoint import build_checkpoint, load_model, read_checkpoint, save_checkpoint
from fercli.config import Config, config_to_dict
from fercli.data import Dataset, Split
from fercli.device import autocast_dtype
from fercli.distributed import Distributed, wrap_model
from fercli.errors import ConfigError, TrainingError
from fercli.inference import predict_logits
from fercli.models import count_parameters, create_model
from fercli.preprocess import Preprocess
from fercli.runs import write_metrics_csv


REPORT_EVERY = 10  # training steps between progress reports (each one reads the running sums back from the device)


class Reporter(Protocol):
    """The one narrow channel from the loop to the screen; tests pass a silent one."""

    def start(self, info: dict) -> None: ...
    def batch(self, done: int, total: int, loss: float, acc: float, ips: float) -> None: ...
    def validating(self) -> None: ...
    def epoch(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    def start(self, info: dict) -> None: ...
    def batch(self, done: int, total: int, loss: float, acc: float, ips: float) -> None: ...
    def validating(self) -> None: ...
    def epoch(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...


@dataclass
class TrainState:
    """Everything a resumed run needs besides the weights; saved in last.pt."""

    epoch: int = 0  # epochs finished
    best_val_acc: float = -1.0
    history: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- the run


def fit(cfg: Config, data: Dataset, run_dir: Path, device: torch.device, reporter: Reporter, resume: dict | None = None,
        ddp: Distributed = Distributed()) -> TrainState:
    if device.type == "cpu":
        # fer train flushed denormals before any worker thread started (device.tune_cpu); for callers of
        # fit itself, this reaches the main thread at least.
        torch.set_flush_denormal(True)
    torch.manual_seed(cfg.train.seed)
    pre = build_preprocess(cfg, data.splits["train"])
    teacher = load_teachers(cfg.train.teacher, data.classes, device)
    if teacher and cfg.train.distill_offline:  # their labels become the training targets; no teacher in the loop
        data = with_teacher_targets(data, teacher, cfg, device, run_dir, reporter, write=ddp.is_main)
        teacher = []
    net = build_model(cfg, len(data.classes))
    if cfg.train.init:  # on resume too: the run keeps the input normalisation its starting weights expect
        pre = start_from(cfg.train.init, net, cfg, data.classes, pre)
    net = net.to(device)
    if device.type == "cuda":  # FER-2013's pixels are 83 MB of uint8: held on the card, no host gather per step
        data = replace(data, splits={name: replace(s, images=s.images.to(device)) for name, s in data.splits.items()})
    if cfg.runtime.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, net)
    state = TrainState()
    if resume is not None:
        state = restore(resume, net, optimizer)
    average = WeightAverage(resume.get("swa") if resume is not None else None) if cfg.train.swa_start > 0 else None
    model = wrap_model(net, ddp, device)  # same parameters as net; DDP averages their gradients
    criterion = build_criterion(cfg, data.splits["train"], device)
    precision = " (bf16 autocast)" if autocast_dtype(device, cfg.runtime.amp, cfg.runtime.cpu_bf16) else ""
    reporter.start({"model": cfg.model.name, "params": count_parameters(net), "device": f"{device}{precision}",
                    "train": len(data.splits["train"]), "val": len(data.splits["val"]), "epochs": cfg.train.epochs,
                    "start_epoch": state.epoch, "swa": average is not None})
    warned = False
    for epoch in range(state.epoch, cfg.train.epochs):
        seed_epoch(cfg.train.seed, epoch)
        train_row = train_one_epoch(model, data.splits["train"], pre, cfg, optimizer, criterion, device, epoch, reporter,
                                    teacher, ddp)
        reporter.validating()
        val_row = evaluate(net, data.splits["val"], pre, device, cfg.train.eval_batch_size)
        row = {"epoch": epoch + 1, **train_row, "val_loss": val_row["loss"], "val_acc": val_row["acc"]}
        if average is not None:
            row["swa_val_acc"] = add_to_average(average, net, epoch + 1, cfg, data, pre, device, run_dir, ddp)
        if not math.isfinite(row["train_loss"]):  # diverged: saving it would ship a model that predicts NaN
            raise TrainingError(f"training diverged in epoch {epoch + 1} (the loss is {row['train_loss']}); lower "
                                f"optim.lr (now {cfg.optim.lr}) or set optim.clip_grad, then train again")
        state.history.append(row)
        state.epoch = epoch + 1
        improved = row["val_acc"] > state.best_val_acc
        state.best_val_acc = max(state.best_val_acc, row["val_acc"])
        if ddp.is_main:
            save_epoch(net, optimizer, cfg, data, pre, state, run_dir, improved, average)
        reporter.epoch(row)
        if val_row["only_class"] is not None and not warned:
            reporter.message(collapse_warning(epoch + 1, data.classes[val_row["only_class"]], cfg))
            warned = True
    if ddp.is_main and cfg.train.calibrate:
        for path in (run_dir / "best.pt", run_dir / "swa.pt"):
            if path.is_file():
                calibrate_best(path, data.splits["val"], device, cfg.train.eval_batch_size, reporter)
    return state


def add_to_average(average: WeightAverage, net: nn.Module, epoch: int, cfg: Config, data: Dataset, pre: Preprocess,
                   device, run_dir: Path, ddp: Distributed) -> float | str:
    """Fold this epoch's weights into the average once swa_start is reached; its validation accuracy (blank before)."""
    if epoch < cfg.train.swa_start:
        return ""  # metrics.csv keeps one set of columns for the whole run
    average.add(net)
    model = average.averaged_model(net)
    amp = autocast_dtype(device, cfg.runtime.amp, cfg.runtime.cpu_bf16)
    recompute_batchnorm(model, data.splits["train"].images, pre, device, cfg.train.eval_batch_size, amp)
    acc = evaluate(model, data.splits["val"], pre, device, cfg.train.eval_batch_size)["acc"]
    if ddp.is_main:
        metrics = {"epoch": epoch, "val_acc": acc, "swa_epochs": average.count}
        save_checkpoint(build_checkpoint(model, cfg.model.name, model_args(cfg, len(data.classes)), data.classes, pre,
                                         config=config_to_dict(cfg), metrics=metrics,
                                         data_fingerprint=data.fingerprint), run_dir / "swa.pt")
    return acc


def seed_epoch(seed: int, epoch: int) -> None:
    # Seeding per epoch (not once) makes a resumed run draw exactly what an uninterrupted one would.
    torch.manual_seed(seed * 100_003 + epoch)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch + 1)


def build_preprocess(cfg: Config, train: Split) -> Preprocess:
    pixels = train.images[:10_000].float() / 255.0
    size = cfg.data.image_size
    crop = cfg.augment.crop or size
    return Preprocess(size, crop, cfg.data.channels, round(float(pixels.mean()), 4), round(float(pixels.std()), 4))


def model_args(cfg: Config, num_classes: int) -> dict:
    args = {"in_channels": cfg.data.channels, "num_classes": num_classes, **cfg.model.args}
    if cfg.model.name == "seed_cnn":
        args.setdefault("input_size", cfg.augment.crop or cfg.data.image_size)
    return args


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    return create_model(cfg.model.name, **model_args(cfg, num_classes))


def start_from(path: str, net: nn.Module, cfg: Config, classes, pre: Preprocess) -> Preprocess:
    """Copy a checkpoint's weights into the fresh ``net`` and keep the pixel mean/std they were trained with."""
    payload = init_checkpoint(path, cfg, classes)
    net.load_state_dict(payload["state_dict"])
    return replace(pre, mean=payload["preprocess"]["mean"], std=payload["preprocess"]["std"])


def init_checkpoint(path: str, cfg: Config, classes) -> dict:
    """train.init's checkpoint, refused unless it holds this recipe's model, classes and input size."""
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"train.init: checkpoint not found: {path} (give the best.pt or last.pt of an earlier run)")
    payload = read_checkpoint(Path(path).expanduser())
    wanted = {"name": cfg.model.name, "args": model_args(cfg, len(classes))}
    if payload["model"] != wanted:
        raise ConfigError(f"train.init: {path} holds model {payload['model']['name']} {payload['model']['args']}, this recipe "
                          f"builds {wanted['name']} {wanted['args']}; set model.name and model.args to match it")
    if list(payload["classes"]) != list(classes):
        raise ConfigError(f"train.init: {path} was trained on classes {', '.join(payload['classes'])}, this data has "
                          f"{', '.join(classes)}; fine-tune on data with the same class folders")
    size = payload["preprocess"]["input_size"]
    if size != (cfg.augment.crop or cfg.data.image_size):
        raise ConfigError(f"train.init: {path} takes {size} px inputs, this recipe gives "
                          f"{cfg.augment.crop or cfg.data.image_size} px; set augment.crop={size}")
    return payload


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    # No weight decay on BatchNorm and biases: decaying them only fights the normalisation.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    if o.name == "adam":
        # The seed used Adam's coupled L2 on every parameter; keep that exactly.
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    raise ConfigError(f"optim.name: unknown optimizer {o.name!r} (use sgd, adam or adamw)")


def lr_factor(cfg: Config, progress: float) -> float:
    """LR multiplier at ``progress`` epochs (fractional) into the run."""
    o, total = cfg.optim, cfg.train.epochs
    if o.warmup_epochs > 0 and progress < o.warmup_epochs and o.schedule != "onecycle":
        return (progress + 1e-3) / o.warmup_epochs
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "multistep":
        return o.gamma ** sum(progress >= m for m in o.milestones)
    if o.schedule == "cosine":
        start = o.warmup_epochs
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - start) / max(total - start, 1e-9))))
    if o.schedule == "onecycle":
        peak = 0.3 * total
        if progress < peak:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * progress / peak))
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - peak) / (total - peak))))
    raise ConfigError(f"optim.schedule: unknown schedule {o.schedule!r} (use constant, multistep, cosine or onecycle)")


def build_criterion(cfg: Config, train: Split, device: torch.device) -> nn.Module:
    weight = None
    if cfg.optim.class_weights:
        counts = torch.bincount(train.labels, minlength=int(train.labels.max()) + 1).float().clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)).to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.optim.label_smoothing)


def load_teachers(paths: tuple[str, ...], classes: tuple[str, ...], device: torch.device) -> list:
    teachers = [load_model(p, device) for p in paths]
    for path, teacher in zip(paths, teachers):
        if teacher.classes != classes:  # its probabilities would land on the wrong classes without a word
            raise ConfigError(f"train.teacher: {path} predicts {list(teacher.classes)}, the data has {list(classes)}; "
                              "a teacher must know the same classes in the same order")
    return teachers


def with_teacher_targets(data: Dataset, teachers: list, cfg: Config, device, run_dir: Path, reporter: Reporter,
                         write: bool = True) -> Dataset:
    """The training split with targets that mix its labels (or vote distributions) with the teachers'."""
    train = data.splits["train"]
    for path, teacher in zip(cfg.train.teacher, teachers):
        if (teacher.preprocess.image_size, teacher.preprocess.channels) != (train.images.shape[-1], train.images.shape[1]):
            raise ConfigError(f"train.teacher: {path} reads {teacher.preprocess.image_size}-pixel images with "
                              f"{teacher.preprocess.channels} channel(s), unlike data.image_size/data.channels; "
                              "offline distillation labels the data's own images: use teachers trained at that size")
    probs = cached_teacher_probs(teachers, train, cfg, device, run_dir / "teacher_targets.pt", reporter, write)
    labels = train.soft if train.soft is not None else F.one_hot(train.labels, len(data.classes)).float()
    w = cfg.train.distill_weight
    return replace(data, splits={**data.splits, "train": replace(train, soft=(1 - w) * labels + w * probs)})


def cached_teacher_probs(teachers: list, train: Split, cfg: Config, device, path: Path, reporter: Reporter,
                         write: bool) -> torch.Tensor:
    """Labelling the training split takes minutes on a CPU: done once per run, kept beside last.pt for --resume.
    The key names the teachers' files, the temperature and the images, so a stale file is never used."""
    import hashlib

    from fercli.checkpoint import file_fingerprint
    from fercli.runs import write_atomic

    parts = [file_fingerprint(p) for p in cfg.train.teacher] + [str(cfg.train.distill_temperature), str(len(train))]
    key = hashlib.sha1("|".join(parts).encode() + train.images.numpy().tobytes()).hexdigest()[:16]
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.get("key") == key:
            return cached["probs"]
    reporter.message(f"teachers labelling the {len(train):,} training images (flip-averaged), once for this run")
    per_teacher = []
    for number, (source, teacher) in enumerate(zip(cfg.train.teacher, teachers), start=1):
        per_teacher.append(offline_teacher_probs(teacher, train.images, cfg.train.distill_temperature, device))
        reporter.message(f"  teacher {number}/{len(teachers)} done: {source}")
    probs = torch.stack(per_teacher).mean(0)
    if write:
        write_atomic(path, lambda tmp: torch.save({"key": key, "probs": probs}, tmp))
    return probs


def offline_teacher_probs(teacher, images: torch.Tensor, t: float, device) -> torch.Tensor:
    """[N, K]: the teacher's flip-TTA log-probability for each whole (un-augmented) image, softened by ``t``.
    The teacher sees the image as its own evaluation does (its centre crop)."""
    return F.softmax(predict_logits(teacher.model, images, teacher.preprocess, device, tta="flip") / t, dim=1)


# ---------------------------------------------------------------- one epoch


def train_one_epoch(model, split: Split, pre: Preprocess, cfg: Config, optimizer, criterion, device, epoch: int,
                    reporter: Reporter, teachers: list, ddp: Distributed = Distributed()) -> dict:
    model.train()
    gen = epoch_generator(cfg.train.seed, epoch)
    bs = cfg.train.batch_size
    order = torch.randperm(len(split), generator=gen)
    steps = len(split) // bs  # drop the ragged last batch: BatchNorm dislikes tiny batches
    amp = autocast_dtype(device, cfg.runtime.amp, cfg.runtime.cpu_bf16)
    sums = torch.zeros(2, device=device)  # sum of loss x images, right answers: read back only when reported
    seen, start = 0, time.perf_counter()
    for step in range(steps):
        set_lr(optimizer, cfg, epoch + step / steps)
        idx = order[step * bs : (step + 1) * bs]
        images = split.images[idx.to(split.images.device)].to(device, non_blocking=True)
        # Every rank augments the whole global batch (keeping generators in step), then takes its share.
        x = ddp.local_part(augment_batch(images, pre, cfg.augment, gen))
        labels = ddp.local_part(split.labels[idx]).to(device, non_blocking=True)
        # FER+ vote distributions, when trained on: cross-entropy takes class probabilities as targets too.
        targets = labels if split.soft is None else ddp.local_part(split.soft[idx]).to(device, non_blocking=True)
        idx = ddp.local_part(idx)
        if cfg.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            loss, logits = compute_loss(model, x, targets, criterion, cfg, gen, teachers, pre)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.clip_grad > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        optimizer.step()
        sums += torch.stack([loss.detach().float() * len(idx), (logits.argmax(1) == labels).sum().float()])
        seen += len(idx)
        if step == 0 or (step + 1) % REPORT_EVERY == 0 or step + 1 == steps:  # the bar moves from the first step
            loss_sum, right = sums.tolist()  # a GPU waits here: once per report, not once per step
            reporter.batch(step + 1, steps, loss_sum / seen, right / seen, seen / (time.perf_counter() - start))
    loss_sum, right = sums.tolist()
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": right / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 1), "images_per_s": round(seen / seconds, 1)}


def set_lr(optimizer, cfg: Config, progress: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = cfg.optim.lr * lr_factor(cfg, progress)


def autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compute_loss(model, x, labels, criterion, cfg: Config, gen, teachers: list, pre: Preprocess):
    """``labels``: class indices [N], or target distributions [N, K]."""
    mix = pick_mix(cfg, gen)
    if mix is not None:
        blend, alpha = mix
        mixed, order, lam = blend(x, alpha, gen)
        logits = model(mixed)
        loss = lam * criterion(logits, labels) + (1 - lam) * criterion(logits, labels[order])
        x = mixed
    else:
        logits = model(x)
        loss = criterion(logits, labels)
    if teachers:
        t = cfg.train.distill_temperature
        precision = autocast_dtype(x.device, cfg.runtime.amp, cfg.runtime.cpu_bf16 or cfg.train.teacher_bf16)
        target = teacher_probs(teachers, x, pre, t, flip=cfg.train.teacher_flip, dtype=precision)
        kd = F.kl_div(F.log_softmax(logits.float() / t, dim=1), target, reduction="batchmean") * t * t
        loss = (1 - cfg.train.distill_weight) * loss + cfg.train.distill_weight * kd
    return loss, logits


def pick_mix(cfg: Config, gen: torch.Generator):
    """mixup, cutmix or neither for this batch; with both configured, one of them at random per batch."""
    choices = [(fn, alpha) for fn, alpha in ((mixup, cfg.augment.mixup), (cutmix, cfg.augment.cutmix)) if alpha > 0]
    if len(choices) == 2:
        return choices[int(torch.randint(2, (1,), generator=gen))]
    return choices[0] if choices else None


@torch.no_grad()
def teacher_probs(teachers: list, x: torch.Tensor, pre: Preprocess, t: float, flip: bool = False,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """The teachers' averaged softened probabilities for the student's own (augmented) batch. With ``flip``
    each teacher also sees the mirror image, as flip TTA does: long-trained teachers gain a point from it.
    ``dtype``: the teachers' autocast precision (bf16: train.teacher_bf16), whatever the student's."""
    probs = []
    for teacher in teachers:
        tp = teacher.preprocess
        xt = (x.float() * pre.std + pre.mean - tp.mean) / tp.std
        if xt.shape[-1] != tp.input_size:
            xt = F.interpolate(xt, size=(tp.input_size, tp.input_size), mode="bilinear", align_corners=False)
        for view in (xt, xt.flip(-1)) if flip else (xt,):
            with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                logits = teacher.model(view)
            probs.append(F.softmax(logits.float() / t, dim=1))
    return torch.stack(probs).mean(0)


# ---------------------------------------------------------------- evaluation


def evaluate(model, split: Split, pre: Preprocess, device, batch_size: int = 512) -> dict:
    logits = predict_logits(model, split.images, pre, device, batch_size)
    loss = F.cross_entropy(logits, split.labels).item()
    predicted = logits.argmax(1)
    acc = (predicted == split.labels).float().mean().item()
    classes = predicted.unique()
    return {"loss": loss, "acc": acc, "only_class": int(classes[0]) if len(classes) == 1 else None}


def collapse_warning(epoch: int, class_name: str, cfg: Config) -> str:
    """A network that answers one class for every image has usually lost its last hidden layer for good (dead
    ReLUs get no gradient): the seed recipe at Adam lr 0.01 did so in its first 100 steps, and its run would have
    gone on for hours at 25%. Say so at once."""
    return (f"epoch {epoch}: the model predicts {class_name!r} for every validation image, so training has "
            f"collapsed, usually from a learning rate too high for the network (optim.lr={cfg.optim.lr}); "
            f"stop it (Ctrl-C) and train again with a lower optim.lr")


# ---------------------------------------------------------------- checkpoints


def save_epoch(model, optimizer, cfg: Config, data: Dataset, pre: Preprocess, state: TrainState, run_dir: Path,
               improved: bool, average: WeightAverage | None = None) -> None:
    row = state.history[-1]
    metrics = {"epoch": state.epoch, "val_acc": row["val_acc"], "val_loss": row["val_loss"], "train_acc": row["train_acc"]}
    payload = build_checkpoint(model, cfg.model.name, model_args(cfg, len(data.classes)), data.classes, pre,
                               config=config_to_dict(cfg), metrics=metrics, data_fingerprint=data.fingerprint)
    if improved:
        save_checkpoint(payload, run_dir / "best.pt")
    write_metrics_csv(state.history, run_dir / "metrics.csv")
    resume_state = {"epoch": state.epoch, "best_val_acc": state.best_val_acc, "history": state.history}
    extra = {"swa": average.to_dict()} if average is not None else {}
    save_checkpoint({**payload, "optimizer": optimizer.state_dict(), "train_state": resume_state, **extra},
                    run_dir / "last.pt")


def restore(payload: dict, model: nn.Module, optimizer) -> TrainState:
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    saved = payload["train_state"]
    return TrainState(int(saved["epoch"]), float(saved["best_val_acc"]), list(saved["history"]))
