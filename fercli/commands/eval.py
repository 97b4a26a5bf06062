"""``fer eval``: score checkpoint(s) on a data split; tables to stdout, files to runs/eval/<name>."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fercli import console
from fercli.model.checkpoint import file_fingerprint, training_data_root
from fercli.choices import TTA, Labels
from fercli.model.device import resolve_device
from fercli.errors import DataError
from fercli.evaluate.scoring import average_probs, build_report, clean_part, ensemble_probs, load_split, model_logits, open_classifiers
from fercli.evaluate.metrics import summary_metrics, with_misses
from fercli.runs import check_run_name, new_run_dir, write_text_atomic


def run_eval(*, checkpoints: list[Path] | None, data: str | None, split: str, tta: TTA, as_json: bool, name: str,
             batch_size: int, device_name: str, labels_from: Labels | None = None, detect: bool = False) -> dict:
    check_run_name(name, "runs/eval")  # before the work, not after it
    device = resolve_device(device_name)
    paths, models = open_classifiers(checkpoints, device, batch_size)
    if detect and models[0].preprocess.channels != 1:
        raise DataError("--detect: the face pipeline makes gray crops, and this model takes colour input")
    chosen, dataset = load_split(data, models, split, warn=console.warn, faces="detect" if detect else "crops")
    # By default a model is scored on the labels it learnt: a FER+ model on FER+ majorities.
    meta = models[0].meta  # a checkpoint keeps its config; an export, a "labels" entry
    labels_from = Labels(labels_from or meta.get("labels") or meta.get("config", {}).get("data", {}).get("labels", "fer2013"))
    relabelled = None
    if Labels(labels_from) == Labels.ferplus:
        from fercli.data.ferplus import relabel, votes_lookup

        lookup, where = votes_lookup(Path(data or training_data_root(models[0].meta)))
        chosen, relabelled = relabel(chosen, lookup, models[0].classes)
        if not relabelled["kept"]:
            raise DataError(f"none of the {sum(relabelled['dropped'].values()):,} images has a FER+ majority label in "
                            f"{where}; FER+ labels exist for FER-2013's images only")
        relabelled["votes"] = where
    classes, labels = models[0].classes, chosen.labels.numpy()
    start = time.perf_counter()
    logits = model_logits(models, chosen.images, tta)
    images_per_s = len(labels) / (time.perf_counter() - start)  # all models and TTA views, batched
    temperatures = [m.temperature for m in models]
    probs = average_probs(logits, temperatures)
    detected = None
    if chosen.found is not None:  # photos: what fer predict would say, misses included; then the found faces alone
        found = chosen.found.numpy()
        detected = with_misses(probs.argmax(1), labels, found)
        probs, labels, logits = probs[found], labels[found], [z[found] for z in logits]
        chosen = replace(chosen, images=chosen.images[found], labels=chosen.labels[found])
        if not len(labels):
            raise DataError(f"no face found in any of the {detected['images']:,} images; are they photos of faces?")
    report = build_report(probs, labels, classes)
    report["uncalibrated"] = summary_metrics(average_probs(logits, [1.0] * len(models)), labels)
    if detected is not None:
        report["detect"] = detected
    if tta != "none":
        report["no_tta"] = summary_metrics(ensemble_probs(models, chosen.images, TTA.none), labels)
    clean = clean_part(chosen, dataset, split)
    if clean is not None:  # the same split without the images that also occur (near-identically) in training
        right = probs.argmax(1) == labels
        report["clean"] = {"images": int(clean.sum()), "accuracy": float(right[clean].mean()) if clean.any() else None,
                           "twins_in_train": int((~clean).sum())}
    if relabelled:
        report["ferplus"] = relabelled
    report.update(labels=Labels(labels_from).value, checkpoints=[str(p) for p in paths], checkpoint_fingerprints=[file_fingerprint(p) for p in paths],
                  data=str(data or training_data_root(models[0].meta)), data_fingerprint=dataset.fingerprint,
                  split=split, tta=TTA(tta).value, faces="detect" if detect else "crops", images=int(len(labels)), temperatures=temperatures,
                  params=[m.parameters for m in models], device=" + ".join(sorted({m.runs_on for m in models})),
                  images_per_s=images_per_s)
    out_dir = new_run_dir("runs/eval", name)
    write_eval_files(report, probs, labels, classes, out_dir, picture_title(report))
    if as_json:
        print(json.dumps(report))
    else:
        show_report(report, classes, out_dir)
    return report


def picture_title(report: dict) -> str:
    """What a saved figure shows, so it still says so when shared alone: model(s), data, split, labels, TTA."""
    models = " + ".join(Path(p).name for p in report["checkpoints"])
    return (f"{models} on {Path(report['data']).name} {report['split']} ({report['images']:,} images, "
            f"{report['labels']} labels, TTA {report['tta']}): accuracy {report['metrics']['accuracy']:.2%}")


def write_eval_files(report: dict, probs: np.ndarray, labels: np.ndarray, classes, out_dir: Path, title: str) -> None:
    import pandas as pd

    from fercli.plots import plot_confusion_matrix, plot_reliability

    write_text_atomic(json.dumps(report, indent=2), out_dir / "metrics.json")
    pd.DataFrame(report["per_class"]).to_csv(out_dir / "per_class.csv", index=False)
    matrix = np.array(report["confusion"])
    pd.DataFrame(matrix, index=list(classes), columns=list(classes)).rename_axis("true \\ pred").to_csv(out_dir / "confusion.csv")
    plot_confusion_matrix(matrix, classes, out_dir / "confusion_matrix.png", normalize=False, title=title)
    plot_confusion_matrix(matrix, classes, out_dir / "confusion_matrix_normalized.png", normalize=True, title=title)
    plot_reliability(report["reliability"], report["metrics"]["ece"], out_dir / "reliability.png", title=title)


def show_report(report: dict, classes, out_dir: Path) -> None:
    m, u = report["metrics"], report["uncalibrated"]
    title = (f"{', '.join(report['checkpoints'])} on {report['split']} ({report['images']:,} images, TTA {report['tta']}, "
             f"{report['labels']} labels)")
    rows = []
    if "detect" in report:
        d = report["detect"]
        title = title.replace(f"({report['images']:,} images", f"({d['images']:,} photos, {report['images']:,} faces found")
        rows += [["accuracy, photos (no face found = wrong)", f"{d['accuracy']:.2%}"],
                 ["balanced accuracy, photos", f"{d['balanced_accuracy']:.2%}"],
                 ["faces found", f"{d['found']:,} of {d['images']:,} ({d['found_rate']:.1%})"]]
    rows += [["accuracy" + (" on the faces found" if "detect" in report else ""), f"{m['accuracy']:.2%}"], ["macro-F1", f"{m['macro_f1']:.4f}"],
            ["balanced accuracy", f"{m['balanced_accuracy']:.2%}"], ["top-2 accuracy", f"{m['top2_accuracy']:.2%}"],
            ["NLL", f"{m['nll']:.4f} (uncalibrated {u['nll']:.4f})"], ["ECE (15 bins)", f"{m['ece']:.4f} (uncalibrated {u['ece']:.4f})"]]
    if "no_tta" in report:
        gain = m["accuracy"] - report["no_tta"]["accuracy"]
        rows.append([f"TTA {report['tta']} gain", f"{gain:+.2%} (no TTA {report['no_tta']['accuracy']:.2%})"])
    if "clean" in report:
        c = report["clean"]
        value = "—" if c["accuracy"] is None else f"{c['accuracy']:.2%}"
        rows.append(["without train twins", f"{value} ({c['images']:,} images; {c['twins_in_train']:,} have a twin in train)"])
    rows.append(["parameters", " + ".join("unknown" if p is None else f"{p:,}" for p in report["params"])])
    rows.append(["speed", f"{report['images_per_s']:,.0f} images/s on {report['device']}, TTA {report['tta']}"])
    console.show(console.make_table(title, ["metric", "value"], rows))
    per_class = [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]] for r in report["per_class"]]
    console.show(console.make_table("per class", ["class", "precision", "recall", "F1", "support"], per_class))
    matrix = [[name, *row] for name, row in zip(classes, report["confusion"])]
    console.show(console.make_table("confusion matrix (rows: true, columns: predicted)", ["true \\ pred", *classes], matrix))
    pairs = [[f"{p['true']} -> {p['pred']}", p["count"], f"{p['share_of_true']:.1%}"] for p in report["most_confused"]]
    console.show(console.make_table("most confused", ["true -> predicted", "images", "of true class"], pairs))
    console.result_line(f"Results saved to {out_dir}")
