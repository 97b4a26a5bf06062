"""``fer audit``: what a dataset holds before anyone trusts a score on it: twins within and across splits, twins
whose labels differ, unreadable files, class balance. Tables to stdout, the lists to runs/audit/<name>/."""

from __future__ import annotations

import csv
import json

from fercli import console
from fercli.evaluate.audit import find_twins
from fercli.config import DataConfig
from fercli.data.dataset import load_dataset
from fercli.runs import check_run_name, new_run_dir, write_text_atomic

PAIRS = (("train", "train"), ("val", "train"), ("test", "train"), ("test", "val"))


def run_audit(*, data: str, name: str, as_json: bool) -> dict:
    check_run_name(name, "runs/audit")
    dataset = load_dataset(DataConfig(root=data, skip_bad=True), console.warn)
    splits = {k: s for k, s in dataset.splits.items() if len(s)}
    rows, twin_rows = [], []
    for first, second in PAIRS:
        if first not in splits or second not in splits:
            continue
        a, b = splits[first], splits[second]
        twins = find_twins(a.images[:, 0].numpy(), None if first == second else b.images[:, 0].numpy())
        conflicts = [t for t in twins if a.labels[t.a] != b.labels[t.b]]
        rows.append({"pair": f"{first} ~ {second}", "twin_pairs": len(twins), f"{first}_images_with_a_twin":
                     len({t.a for t in twins} | ({t.b for t in twins} if first == second else set())),
                     "conflicting_labels": len(conflicts), "exact": sum(t.difference == 0 for t in twins)})
        twin_rows += [[first, a.sources[t.a], dataset.classes[a.labels[t.a]], second, b.sources[t.b],
                       dataset.classes[b.labels[t.b]], t.difference] for t in twins]
    balance = {k: {c: int((s.labels == i).sum()) for i, c in enumerate(dataset.classes)} for k, s in splits.items()}
    report = {"data": data, "layout": dataset.layout, "images": {k: len(s) for k, s in splits.items()},
              "unreadable": len(dataset.bad), "twins": rows, "class_balance": balance}
    out_dir = new_run_dir("runs/audit", name)
    with open(out_dir / "twins.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split_a", "file_a", "label_a", "split_b", "file_b", "label_b", "mean_abs_difference"])
        writer.writerows(twin_rows)
    write_text_atomic("\n".join(dataset.bad) + ("\n" if dataset.bad else ""), out_dir / "unreadable.txt")
    write_text_atomic(json.dumps(report, indent=2), out_dir / "summary.json")
    if as_json:
        print(json.dumps(report))
        return report
    table = [[r["pair"], f"{r['twin_pairs']:,}", f"{next(v for k, v in r.items() if k.endswith('_with_a_twin')):,}",
              f"{r['exact']:,}", f"{r['conflicting_labels']:,}"] for r in rows]
    console.show(console.make_table(f"{data}: twins (mean absolute difference under 3 grey levels)",
                                    ["splits", "twin pairs", "first split's images with a twin", "exact", "labels differ"],
                                    table))
    classes = list(dataset.classes)
    console.show(console.make_table(f"class balance ({len(dataset.bad)} unreadable file(s) left out)", ["split", *classes],
                                    [[k, *(f"{balance[k][c]:,}" for c in classes)] for k in balance]))
    console.result_line(f"Results saved to {out_dir}")
    return report
