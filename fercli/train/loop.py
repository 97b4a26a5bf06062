"""The training loop. ``fit`` reads as the list of steps a training run takes; what it is built from is in
``build``, distillation in ``distill``, weight averaging in ``averaging``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fercli.config import Config, config_to_dict
from fercli.data.dataset import Dataset, Split
from fercli.errors import TrainingError
from fercli.model.checkpoint import build_checkpoint, save_checkpoint
from fercli.model.device import autocast_dtype
from fercli.model.nets import count_parameters
from fercli.model.preprocess import Preprocess
from fercli.model.torch_backend import predict_logits
from fercli.runs import write_metrics_csv
from fercli.train.augment import augment_batch, cutmix, mixup
from fercli.train.averaging import WeightAverage, recompute_batchnorm
from fercli.train.build import (autocast, build_criterion, build_model, build_optimizer, build_preprocess, model_args,
                                set_lr, start_from)
from fercli.train.calibration import calibrate_best
from fercli.train.distill import load_teachers, teacher_probs, with_teacher_targets
from fercli.train.distributed import Distributed, wrap_model


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
    if cfg.train.save_period and state.epoch % cfg.train.save_period == 0:
        save_checkpoint(payload, run_dir / f"epoch{state.epoch}.pt")
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
