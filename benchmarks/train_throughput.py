"""Training images/second: fer's pipeline versus the seed's (ImageFolder + per-image PIL + DataLoader).

Same model, same machine, measured in one run; each figure is the median over repeats of a fixed
number of optimizer steps. Usage: python benchmarks/train_throughput.py [--data DIR] [--steps N]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from common import ROOT, data_arg, machine, median_time, print_table
from fercli.config import load_config
from fercli.data import Split, load_dataset
from fercli.engine import SilentReporter, build_criterion, build_model, build_optimizer, build_preprocess, train_one_epoch

EPOCH_IMAGES = 28_709


def fer_images_per_s(config: str, images: int, repeats: int, data_root: str, extra: list[str] = ()) -> tuple[float, int]:
    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}", f"train.epochs=1", *extra])
    data = load_dataset(cfg.data)
    train = data.splits["train"]
    subset = Split(train.images[:images], train.labels[:images], train.sources[:images])
    model = build_model(cfg, len(data.classes))
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, train, torch.device("cpu"))
    pre = build_preprocess(cfg, train)
    rates = []
    for r in range(repeats):
        row = train_one_epoch(model, subset, pre, cfg, optimizer, criterion, torch.device("cpu"), r, SilentReporter(), [])
        rates.append(row["images_per_s"])
    return statistics.median(rates), cfg.train.batch_size


def seed_images_per_s(config: str, images: int, repeats: int, data_root: str) -> float:
    """The seed project's loop: ImageFolder, PIL transforms per image, DataLoader, batch 16."""
    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}"])
    tf = transforms.Compose([transforms.Grayscale(), transforms.ToTensor()])
    folder = datasets.ImageFolder(str(Path(data_root) / "train"), transform=tf)
    train_idx = [i for i, (p, _) in enumerate(folder.samples) if Path(p).name.startswith("Training_")][:images]
    loader = DataLoader(Subset(folder, train_idx), batch_size=16, shuffle=True)
    model = build_model(cfg, len(folder.classes))
    if cfg.model.name != "seed_cnn":  # crop models see a centre crop, as in fer
        crop = transforms.CenterCrop(cfg.augment.crop)
        folder.transform = transforms.Compose([transforms.Grayscale(), crop, transforms.ToTensor()])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(repeats):
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def data_only_images_per_s(data_root: str, images: int, repeats: int) -> tuple[float, float]:
    """The input pipeline alone (no model): the seed's per-image PIL loading vs fer's batched augmentation."""
    from fercli.augment import augment_batch

    folder = datasets.ImageFolder(str(Path(data_root) / "train"),
                                  transform=transforms.Compose([transforms.Grayscale(), transforms.ToTensor()]))
    idx = [i for i, (p, _) in enumerate(folder.samples) if Path(p).name.startswith("Training_")][:images]
    loader = DataLoader(Subset(folder, idx), batch_size=16, shuffle=True)
    seed_rate = images / median_time(lambda: [None for _ in loader], repeats)
    cfg = load_config(ROOT / "configs" / "fer2013.yaml", [f"data.root={data_root}"])
    train = load_dataset(cfg.data).splits["train"]
    pre, gen = build_preprocess(cfg, train), torch.Generator().manual_seed(0)

    def fer_pass():
        order = torch.randperm(images, generator=gen)
        for start in range(0, images, 64):
            augment_batch(train.images[order[start : start + 64]], pre, cfg.augment, gen)

    return seed_rate, images / median_time(fer_pass, repeats)


def training_gflop_per_image(config: str, data_root: str, input_size: int) -> float:
    """Forward + backward FLOPs of one training image, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}"])
    model, x = build_model(cfg, 7), torch.randn(8, 1, input_size, input_size)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 8 / 1e9


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    """What this CPU sustains on the friendliest fp32 work there is: one large matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n**3 / median_time(lambda: a @ b, max(repeats, 5)) / 1e9


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--images", type=int, default=2048, help="images per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, ceilings = [], []
    peak = matmul_gflops(args.repeats)
    for label, config, side in (("seed_cnn", "seed.yaml", 48), ("default (vgg)", "fer2013.yaml", 40)):
        seed_rate = seed_images_per_s(config, args.images, args.repeats, args.data)
        rows.append([label, "seed: ImageFolder + PIL + DataLoader", 16, f"{seed_rate:.0f}", f"{EPOCH_IMAGES / seed_rate:.0f}", "1.00x"])
        same_batch, _ = fer_images_per_s(config, args.images, args.repeats, args.data,
                                         ["train.batch_size=16", "runtime.channels_last=false"])
        rows.append([label, "fer, batch 16, NCHW", 16, f"{same_batch:.0f}", f"{EPOCH_IMAGES / same_batch:.0f}", f"{same_batch / seed_rate:.2f}x"])
        fast, batch = fer_images_per_s(config, args.images, args.repeats, args.data,
                                       ["train.batch_size=64", "runtime.channels_last=true"])
        rows.append([label, "fer, batch 64, channels_last", batch, f"{fast:.0f}", f"{EPOCH_IMAGES / fast:.0f}", f"{fast / seed_rate:.2f}x"])
        gflop = training_gflop_per_image(config, args.data, side)
        ceilings.append([label, f"{gflop:.3f}", f"{fast * gflop:.0f}", f"{peak / gflop:.0f}", f"{peak / gflop / seed_rate:.1f}x"])
    print_table(f"training throughput, median of {args.repeats} x {args.images} images ({machine()})",
                ["model", "pipeline", "batch", "images/s", "s/epoch", "vs seed"], rows)
    # Why the model-bound ratio stays small: both pipelines run the same FLOPs, and no pipeline can go
    # faster than the CPU's matrix-multiply rate allows.
    print_table(f"compute ceiling: this CPU sustains {peak:.0f} GFLOP/s on a 2048x2048 fp32 matmul",
                ["model", "GFLOP per training image", "fer GFLOP/s (batch 64)", "images/s at that peak", "peak vs seed"],
                ceilings)
    seed_data, fer_data = data_only_images_per_s(args.data, args.images, args.repeats)
    print_table("input pipeline alone, no model", ["pipeline", "images/s", "vs seed"],
                [["seed: ImageFolder + PIL + DataLoader (no augmentation)", f"{seed_data:,.0f}", "1.00x"],
                 ["fer: cached uint8 + batched crop/flip/rotate/scale/erase", f"{fer_data:,.0f}", f"{fer_data / seed_data:.1f}x"]])


if __name__ == "__main__":
    main()
