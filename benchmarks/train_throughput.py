"""Training images/second: fer's pipeline versus the seed's (ImageFolder + per-image PIL + DataLoader).

Same model, same machine, measured in one run; each figure is the median over repeats of a fixed
number of optimizer steps, the pipelines taking turns.
Usage: python benchmarks/train_throughput.py [--data DIR] [--images 2048] [--repeats 3]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from common import ROOT, data_arg, gflop_per_image, machine, matmul_gflops, median_time, print_table, run_benchmark
from fercli.config import load_config
from fercli.data.dataset import Split, load_dataset
from fercli.train.loop import SilentReporter, train_one_epoch
from fercli.train.build import build_criterion, build_model, build_optimizer, build_preprocess

EPOCH_IMAGES = 28_709


def fer_pass(config: str, images: int, data_root: str, extra: list[str] = ()):
    """A callable running one pass of fer's training loop over ``images`` images; returns images/s."""
    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}", "train.epochs=1", *extra])
    data = load_dataset(cfg.data)
    train = data.splits["train"]
    subset = Split(train.images[:images], train.labels[:images], train.sources[:images])
    model = build_model(cfg, len(data.classes))
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, train, torch.device("cpu"))
    pre = build_preprocess(cfg, train)
    epochs = iter(range(10**6))
    return lambda: train_one_epoch(model, subset, pre, cfg, optimizer, criterion, torch.device("cpu"), next(epochs),
                                   SilentReporter(), [])["images_per_s"]


def seed_pass(config: str, images: int, data_root: str):
    """The seed project's loop: ImageFolder, PIL transforms per image, DataLoader, batch 16, Adam."""
    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}"])
    steps = [transforms.Grayscale()] + ([transforms.CenterCrop(cfg.augment.crop)] if cfg.augment.crop else [])
    folder = datasets.ImageFolder(str(Path(data_root) / "train"), transform=transforms.Compose([*steps, transforms.ToTensor()]))
    train_idx = [i for i, (p, _) in enumerate(folder.samples) if Path(p).name.startswith("Training_")][:images]
    loader = DataLoader(Subset(folder, train_idx), batch_size=16, shuffle=True)
    model = build_model(cfg, len(folder.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()

    def one_pass() -> float:
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            seen += len(y)
        return seen / (time.perf_counter() - start)

    return one_pass


def interleaved_medians(passes: dict, repeats: int) -> dict[str, float]:
    """Run the passes round-robin, ``repeats`` times, and take each one's median: on a shared, noisy
    machine a slow spell then hits every pipeline alike instead of whichever happened to run in it."""
    for run in passes.values():
        run()  # warm-up: first-touch allocations, oneDNN kernel selection
    rates = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            rates[name].append(run())
    return {name: statistics.median(values) for name, values in rates.items()}


def data_only_images_per_s(data_root: str, images: int, repeats: int) -> tuple[float, float]:
    """The input pipeline alone (no model): the seed's per-image PIL loading vs fer's batched augmentation."""
    from fercli.train.augment import augment_batch

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
    cfg = load_config(ROOT / "configs" / config, [f"data.root={data_root}"])
    return gflop_per_image(build_model(cfg, 7), input_size, backward=True)


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("--images", type=int, default=2048, help="images per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, ceilings = [], []
    peak = matmul_gflops(args.repeats)
    pipelines = {"seed: ImageFolder + PIL + DataLoader": (16, None),
                 "fer, batch 16, NCHW": (16, ["train.batch_size=16", "runtime.channels_last=false"]),
                 "fer, batch 64, channels_last": (64, ["train.batch_size=64", "runtime.channels_last=true"])}
    for label, config, side in (("seed_cnn", "seed.yaml", 48), ("default (vgg)", "fer2013.yaml", 40)):
        passes = {name: seed_pass(config, args.images, args.data) if extra is None else
                  fer_pass(config, args.images, args.data, extra) for name, (_, extra) in pipelines.items()}
        rates = interleaved_medians(passes, args.repeats)
        seed_rate = rates["seed: ImageFolder + PIL + DataLoader"]
        for name, rate in rates.items():
            rows.append([label, name, pipelines[name][0], f"{rate:.0f}", f"{EPOCH_IMAGES / rate:.0f}", f"{rate / seed_rate:.2f}x"])
        gflop = training_gflop_per_image(config, args.data, side)
        fast = max(rate for name, rate in rates.items() if name.startswith("fer"))
        ceilings.append([label, f"{gflop:.3f}", f"{fast * gflop:.0f}", f"{peak / gflop:.0f}", f"{peak / gflop / seed_rate:.1f}x"])
    print_table(f"training throughput, median of {args.repeats} interleaved passes of {args.images} images ({machine()})",
                ["model", "pipeline", "batch", "images/s", "s/epoch", "vs seed"], rows)
    # Why the model-bound ratio stays small: both pipelines run the same FLOPs, and a large matmul's rate is
    # about as fast as this CPU does fp32 arithmetic (a reference, not a proven ceiling).
    print_table(f"arithmetic: a 2048x2048 fp32 matmul runs {peak:.0f} GFLOP/s on this CPU",
                ["model", "GFLOP per training image", "fer GFLOP/s (fastest)", "images/s at the matmul rate",
                 "that vs seed"], ceilings)
    seed_data, fer_data = data_only_images_per_s(args.data, args.images, args.repeats)
    print_table("input pipeline alone, no model", ["pipeline", "images/s", "vs seed"],
                [["seed: ImageFolder + PIL + DataLoader (no augmentation)", f"{seed_data:,.0f}", "1.00x"],
                 ["fer: cached uint8 + batched crop/flip/rotate/scale/erase", f"{fer_data:,.0f}", f"{fer_data / seed_data:.1f}x"]])


if __name__ == "__main__":
    run_benchmark(main)
