#!/usr/bin/env python3
"""Measure a trained checkpoint's BatchNorm statistics again, on its training images as evaluation sees them.

During training BatchNorm keeps running statistics of augmented images (random crops, rotation, scaling,
erasing), averaged over the last few hundred steps of weights that were still moving; at evaluation the network
sees clean crops. This replaces those statistics with the mean and variance over every training image's
evaluation view (the centre crop, or with --views tencrop one of the ten-crop views drawn at random per image),
in fp32, then fits the softmax temperature again on the validation split, as training does. Nothing is trained:
the weights stay as they are. Writes a new checkpoint (never over an existing file) and prints the validation
accuracy before and after, without TTA.

    python scripts/recalibrate_batchnorm.py CHECKPOINT OUT.pt [--data DIR] [--views none|tencrop]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fercli.train.averaging import recompute_batchnorm
from fercli.train.calibration import fit_temperature
from fercli.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from fercli.console import error, out
from fercli.errors import FerError
from fercli.evaluate.scoring import load_split
from fercli.model.torch_backend import TorchClassifier, predict_logits
from fercli.runs import refuse_overwrite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="the new checkpoint (an existing file is not overwritten)")
    parser.add_argument("--data", default=None, help="the training data (default: where the checkpoint was trained)")
    parser.add_argument("--views", choices=["none", "tencrop"], default="none")
    args = parser.parse_args()
    refuse_overwrite(args.out, overwrite=False)
    device = torch.device("cpu")
    loaded = load_model(args.checkpoint, device)
    classifier = TorchClassifier(loaded, device, path=args.checkpoint)
    train, _ = load_split(args.data, [classifier], "train")
    val, _ = load_split(args.data, [classifier], "val")
    before = accuracy(loaded.model, val, loaded.preprocess)
    recompute_batchnorm(loaded.model, train.images, loaded.preprocess, device, views=args.views)
    logits = predict_logits(loaded.model, val.images, loaded.preprocess, device)
    payload = read_checkpoint(args.checkpoint)
    payload["state_dict"] = {name: value.detach().clone() for name, value in loaded.model.state_dict().items()}
    payload["temperature"] = fit_temperature(logits, val.labels)
    payload["batchnorm_recalibrated"] = {"views": args.views, "images": len(train), "from": args.checkpoint.name}
    save_checkpoint(payload, args.out)
    after = (logits.argmax(1) == val.labels).float().mean().item()
    out.print(f"{args.out}: validation accuracy without TTA {before:.2%} -> {after:.2%} (BatchNorm measured on "
              f"{len(train):,} training images, views {args.views}; temperature {payload['temperature']:.3f})",
              highlight=False, soft_wrap=True)


def accuracy(model, split, pre) -> float:
    logits = predict_logits(model, split.images, pre, torch.device("cpu"))
    return (logits.argmax(1) == split.labels).float().mean().item()


if __name__ == "__main__":
    try:
        main()
    except FerError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
