"""Distillation images/second: the teachers' passes in fp32 versus bf16 autocast (train.teacher_bf16).

fer2013_distill.yaml's student with teacher_flip, its teachers in the loop as in the distillation runs, measured in one
run with the two settings taking turns (median over repeats). Teachers default to the shipped model five times over,
standing in for five teachers of its size; give your own with --teachers. bf16 only changes anything on CPUs with
bf16 matrix units (Intel AMX): elsewhere both rows run fp32.
Usage: python benchmarks/distill_throughput.py [--data DIR] [--teachers A.pt B.pt ...] [--images 1024] [--repeats 3]
"""

from __future__ import annotations

import torch

from common import ROOT, data_arg, machine, print_table, run_benchmark
from fercli.config import load_config
from fercli.data.dataset import Split, load_dataset
from fercli.model.device import cpu_has_bf16_units
from fercli.train.loop import SilentReporter, train_one_epoch
from fercli.train.build import build_criterion, build_model, build_optimizer, build_preprocess
from fercli.train.distill import load_teachers
from train_throughput import EPOCH_IMAGES, interleaved_medians


def distill_pass(data_root: str, teachers: list[str], images: int, teacher_bf16: bool):
    """A callable running one pass of fer's distillation loop over ``images`` training images; returns images/s."""
    overrides = [f"data.root={data_root}", "train.epochs=1", "train.teacher_flip=true",
                 f"train.teacher=[{', '.join(teachers)}]", f"train.teacher_bf16={str(teacher_bf16).lower()}"]
    cfg = load_config(ROOT / "configs" / "fer2013_distill.yaml", overrides)
    data = load_dataset(cfg.data)
    train = data.splits["train"]
    subset = Split(train.images[:images], train.labels[:images], train.sources[:images])
    device = torch.device("cpu")
    model = build_model(cfg, len(data.classes))
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, train, device)
    pre, loaded = build_preprocess(cfg, train), load_teachers(cfg.train.teacher, data.classes, device)
    epochs = iter(range(10**6))
    return lambda: train_one_epoch(model, subset, pre, cfg, optimizer, criterion, device, next(epochs), SilentReporter(),
                                   loaded)["images_per_s"]


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--teachers", nargs="+", default=[str(ROOT / "checkpoints" / "fer_vgg.pt")] * 5)
    parser.add_argument("--images", type=int, default=1024, help="images per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    passes = {setting: distill_pass(args.data, args.teachers, args.images, bf16)
              for setting, bf16 in (("teachers fp32", False), ("teachers bf16 (train.teacher_bf16)", True))}
    rates = interleaved_medians(passes, args.repeats)
    base = rates["teachers fp32"]
    rows = [[name, f"{rate:.0f}", f"{EPOCH_IMAGES / rate:.0f}", f"{rate / base:.2f}x"] for name, rate in rates.items()]
    print_table(f"distillation with {len(args.teachers)} flip-averaged teachers, median of {args.repeats} interleaved "
                f"passes of {args.images} images (bf16 units: {'yes' if cpu_has_bf16_units() else 'no'}; {machine()})",
                ["setting", "images/s", "s/epoch", "vs fp32"], rows)


if __name__ == "__main__":
    run_benchmark(main)
