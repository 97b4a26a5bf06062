"""Pick the model to ship on PublicTest, never on PrivateTest: every candidate and every ensemble of them.

Each candidate checkpoint is scored once per TTA (none, flip, ten-crop) on FER-2013's PublicTest; ensembles
average the candidates' calibrated probabilities from those same scores, so n candidates cost n forward
passes per TTA, not 2^n. Prints accuracy, the accuracy without the images that have a twin in Training,
and which single model and which ensemble lead, with the best single model's lead over the runner-up as a
paired count and McNemar p-value (a lead of a few images is noise), and every other candidate against the first one
(the shipped model, the one a release must beat) with each TTA. PrivateTest is then evaluated once, with fer eval, on the
one that is released. Usage:
python benchmarks/model_selection.py CHECKPOINT [CHECKPOINT ...] [--data DIR] [--tta none flip tencrop]
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from common import data_arg, machine, print_table, run_benchmark
from fercli.choices import TTA
from fercli.evaluate.scoring import average_probs, clean_part, load_split, model_logits, open_classifiers
from fercli.evaluate.metrics import paired_comparison


def main() -> None:
    parser = data_arg(__doc__)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="candidate .pt files (or shipped names)")
    parser.add_argument("--tta", nargs="+", default=["none", "flip", "tencrop"], choices=[t.value for t in TTA])
    args = parser.parse_args()
    paths, models = open_classifiers(args.checkpoints, torch.device("cpu"))
    split, dataset = load_split(args.data, models, "val")  # val = PublicTest: the only split a choice may look at
    labels = split.labels.numpy()
    clean = clean_part(split, dataset, "val")
    names = [short_name(p) for p in paths]
    if len(set(names)) < len(names):  # two runs' best.pt in folders of one name: the rows must tell them apart
        names = [str(p) for p in paths]
    rows = []
    for tta in map(TTA, args.tta):
        logits = model_logits(models, split.images, tta)
        for size in range(1, len(models) + 1):
            for members in itertools.combinations(range(len(models)), size):
                probs = average_probs([logits[i] for i in members], [models[i].temperature for i in members])
                right = probs.argmax(1) == labels
                rows.append([" + ".join(names[i] for i in members), tta.value, size, right.mean(), right[clean].mean(), right])
    rows.sort(key=lambda r: -r[3])
    table = [[name, tta, f"{acc:.2%}", f"{acc_clean:.2%}"] for name, tta, _size, acc, acc_clean, _right in rows]
    print_table(f"PublicTest ({len(labels):,} images; {int(clean.sum()):,} without train twins), {machine()}",
                ["model(s)", "TTA", "accuracy", "without twins"], table)
    for label, pool in (("single model", [r for r in rows if r[2] == 1]), ("ensemble", [r for r in rows if r[2] > 1])):
        if pool:
            best = pool[0]
            print(f"best {label}: {best[0]} with TTA {best[1]}: {best[3]:.2%} ({best[4]:.2%} without twins)")
    singles = [r for r in rows if r[2] == 1]
    if len(singles) > 1:
        best = singles[0]
        runner_up = next(r for r in singles if r[0] != best[0] and r[1] == best[1])
        print(paired_line(best, runner_up))
        print(f"against the first checkpoint ({names[0]}, the model to beat), TTA by TTA:")
        for name in names[1:]:
            for tta in args.tta:
                candidate, baseline = (next(r for r in singles if r[0] == n and r[1] == tta) for n in (name, names[0]))
                print(f"  {paired_line(candidate, baseline)}")


def paired_line(a: list, b: list) -> str:
    """How many images a model gets right that the other misses and the reverse, with McNemar's p: a lead of a few
    images is noise, and a release rule asks for more."""
    paired = paired_comparison(a[5], b[5])
    return (f"{a[0]} vs {b[0]}, both with TTA {a[1]}: {paired['only_a'] - paired['only_b']:+d} images "
            f"(right only for the first on {paired['only_a']}, only for the second on {paired['only_b']}); "
            f"McNemar p = {paired['p_value']:.2f}")


def short_name(path: Path) -> str:
    """run folder/best.pt reads better as the run's name."""
    return f"{path.parent.name}/{path.name}" if path.name in ("best.pt", "last.pt") else path.name


if __name__ == "__main__":
    run_benchmark(main)
