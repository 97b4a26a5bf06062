"""Why configs/seed.yaml trains at Adam lr 0.001, not the 0.01 of the student's README: does the hidden layer live?

The seed network ends in Linear(9,216 -> 128) + ReLU + Linear(128 -> 7). Its 9,216 inputs come out of
ReLU + max-pool, so all are non-negative, and Adam's first steps move every weight by about the learning
rate with one sign per unit: a unit's input sum jumps by about lr x the sum of its inputs, and a unit pushed
below zero for every image gets no gradient again. This trains the recipe with fer's own loop for a few
hundred steps per learning rate and seed, and prints how many of the 128 hidden units still fire on 1,024
PublicTest images, the training loss and the PublicTest accuracy on those images.

Usage: python benchmarks/seed_lr.py [--lr 0.01 0.001] [--seeds 0 1] [--steps 300] [--data DIR]
"""

from __future__ import annotations

import torch

from common import ROOT, data_arg, machine, print_table, run_benchmark
from fercli.config import load_config
from fercli.data.dataset import Split, load_dataset
from fercli.train.loop import SilentReporter, train_one_epoch
from fercli.train.build import build_criterion, build_model, build_optimizer, build_preprocess


def live_units_and_accuracy(model, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float) -> tuple[int, float]:
    model.eval()
    with torch.no_grad():
        x = (images.float() / 255 - mean) / std
        hidden = torch.relu(model.classifier[2](model.features(x).flatten(1)))
        accuracy = (model(x).argmax(1) == labels).float().mean().item()
    model.train()
    return int((hidden > 0).any(0).sum()), accuracy


def trial(data, lr: float, seed: int, steps: int, probe: torch.Tensor, data_root: str) -> list:
    cfg = load_config(ROOT / "configs" / "seed.yaml",
                      [f"data.root={data_root}", f"optim.lr={lr}", f"train.seed={seed}", f"train.epochs={steps}"])
    torch.manual_seed(seed)
    train, val = data.splits["train"], data.splits["val"]
    model = build_model(cfg, len(data.classes))
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, train, torch.device("cpu"))
    pre = build_preprocess(cfg, train)
    # One shuffled stretch of the training set; train_one_epoch is called on 100-step slices of it so the
    # hidden layer can be looked at in between (epochs= counts the slices, so the LR stays at its first value).
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    per_slice = 100 * cfg.train.batch_size
    rows = []
    for i in range(steps // 100):
        idx = order[i * per_slice : (i + 1) * per_slice]
        part = Split(train.images[idx], train.labels[idx], [train.sources[j] for j in idx.tolist()])
        result = train_one_epoch(model, part, pre, cfg, optimizer, criterion, torch.device("cpu"), i, SilentReporter(), [])
        live, accuracy = live_units_and_accuracy(model, val.images[probe], val.labels[probe], pre.mean, pre.std)
        rows.append([lr, seed, (i + 1) * 100, f"{result['train_loss']:.3f}", f"{live}/128", f"{accuracy:.1%}"])
    return rows


def main() -> None:
    parser = data_arg(__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    data = load_dataset(load_config(ROOT / "configs" / "seed.yaml", [f"data.root={args.data}"]).data)
    probe = torch.randperm(len(data.splits["val"]), generator=torch.Generator().manual_seed(1))[:1024]
    rows = [row for lr in args.lr for seed in args.seeds for row in trial(data, lr, seed, args.steps, probe, args.data)]
    print_table(f"seed recipe, first steps (batch 16, Adam, weight decay 1e-4); {machine()}",
                ["Adam lr", "seed", "step", "train loss (last 100)", "hidden units alive", "PublicTest acc (1,024)"], rows)


if __name__ == "__main__":
    run_benchmark(main)
