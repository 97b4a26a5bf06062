"""Knowledge distillation: teachers' softened probabilities as targets, offline (once per run, cached) or in the loop."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from fercli.config import Config
from fercli.data.dataset import Dataset, Split
from fercli.errors import ConfigError
from fercli.model.checkpoint import file_fingerprint, load_model
from fercli.model.preprocess import Preprocess
from fercli.model.torch_backend import predict_logits
from fercli.runs import write_atomic


def load_teachers(paths: tuple[str, ...], classes: tuple[str, ...], device: torch.device) -> list:
    teachers = [load_model(p, device) for p in paths]
    for path, teacher in zip(paths, teachers):
        if teacher.classes != classes:  # its probabilities would land on the wrong classes without a word
            raise ConfigError(f"train.teacher: {path} predicts {list(teacher.classes)}, the data has {list(classes)}; "
                              "a teacher must know the same classes in the same order")
    return teachers



def with_teacher_targets(data: Dataset, teachers: list, cfg: Config, device, run_dir: Path, reporter,
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



def cached_teacher_probs(teachers: list, train: Split, cfg: Config, device, path: Path, reporter,
                         write: bool) -> torch.Tensor:
    """Labelling the training split takes minutes on a CPU: done once per run, kept beside last.pt for --resume.
    The key names the teachers' files, the temperature and the images, so a stale file is never used."""
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
