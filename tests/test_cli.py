"""The four commands end to end through Typer's CliRunner, on synthetic data."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_overrides, write_class_folders
from fercli.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_commands_without_importing_torch():
    """--help stays fast by importing nothing heavy (benchmarks/predict_latency.py times it)."""
    code = ("import sys\nfrom fercli.cli import app\ntry:\n    app(['--help'], prog_name='fer')\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'cv2', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"
    for command in ("train", "eval", "visualize", "predict", "export"):
        assert command in out


def test_train_then_resume_continues(tmp_path, fer_folders):
    result = invoke("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    assert {"config.yaml", "metrics.csv", "curves.png", "best.pt", "last.pt"} <= {p.name for p in run_dir.iterdir()}
    again = invoke("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    assert again.stdout.strip().splitlines()[-1] == str(tmp_path / "runs" / "tiny-2")  # never overwrites
    resumed = invoke("train", "--resume", run_dir, "train.epochs=2")
    assert resumed.exit_code == 0, resumed.output
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [1, 2]


def test_resume_refuses_changing_the_recipe(tmp_path, trained_checkpoint):
    result = invoke("train", "--resume", trained_checkpoint.parent, "optim.lr=0.5")
    assert result.exit_code == 2 and "cannot change optim.lr when resuming" in result.stderr


def test_resume_of_a_folder_without_a_run_says_so(tmp_path):
    result = invoke("train", "--resume", tmp_path)
    assert result.exit_code == 2, result.output
    assert "no run to continue there" in result.stderr and "fer runs" in result.stderr
    assert "omit --checkpoint" not in result.stderr


def test_eval_writes_report_and_json(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "-c", trained_checkpoint, "--data", fer_folders, "--split", "test", "--tta", "flip")
    assert result.exit_code == 0, result.output
    for word in ("accuracy", "macro-F1", "ECE", "per class", "confusion matrix", "most confused", "TTA flip gain",
                 "parameters", "images/s on"):
        assert word in result.stdout
    out_dir = tmp_path / "runs" / "eval" / "exp"
    expected = {"metrics.json", "per_class.csv", "confusion.csv", "confusion_matrix.png",
                "confusion_matrix_normalized.png", "reliability.png"}
    assert expected <= {p.name for p in out_dir.iterdir()}
    as_json = invoke("eval", "-c", trained_checkpoint, "--data", fer_folders, "--json")
    report = json.loads(as_json.stdout)  # nothing but JSON on stdout
    assert report["images"] == 21 and 0 <= report["metrics"]["accuracy"] <= 1
    assert report["params"] == [sum(t.numel() for k, t in torch.load(trained_checkpoint, weights_only=True)["state_dict"].items()
                                    if "running" not in k and "num_batches" not in k)]
    assert report["images_per_s"] > 0 and report["device"].split(":")[0] in ("cpu", "cuda", "mps")
    assert sum(map(sum, report["confusion"])) == 21
    assert (tmp_path / "runs" / "eval" / "exp-2").is_dir()


def test_eval_ensemble_averages_checkpoints(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "-c", trained_checkpoint, "-c", trained_checkpoint.parent / "last.pt", "--data", fer_folders, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["checkpoints"]) == 2


def test_eval_on_data_with_fewer_classes_maps_by_name(tmp_path, trained_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_class_folders(tmp_path / "two", classes=("happy", "sad"))
    result = invoke("eval", "-c", trained_checkpoint, "--data", root, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    supports = {row["class"]: row["support"] for row in report["per_class"]}
    assert supports["happy"] > 0 and supports["sad"] > 0 and supports["angry"] == 0


def test_eval_refuses_unknown_classes(tmp_path, trained_checkpoint):
    root = write_class_folders(tmp_path / "odd", classes=("happy", "contempt"))
    result = invoke("eval", "-c", trained_checkpoint, "--data", root)
    assert result.exit_code == 1 and "'contempt'" in result.stderr and "does not know" in result.stderr


def test_visualize_grid_and_filters(tmp_path, fer_folders, trained_checkpoint):
    out = tmp_path / "grid.png"
    result = invoke("visualize", "--n", 9, "-c", trained_checkpoint, "--data", fer_folders, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert result.stdout.strip() == str(out)
    refused = invoke("visualize", "-c", trained_checkpoint, "--data", fer_folders, "--out", out)
    assert refused.exit_code == 1 and "--overwrite" in refused.stderr
    bad_pair = invoke("visualize", "-c", trained_checkpoint, "--data", fer_folders, "--pair", "angry:glad")
    assert bad_pair.exit_code == 1 and "'glad' is not a class" in bad_pair.stderr
    least = invoke("visualize", "--n", 4, "--least-confident", "-c", trained_checkpoint, "--data", fer_folders,
                   "--out", tmp_path / "least.png")
    assert least.exit_code == 0 and (tmp_path / "least.png").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the error cannot happen here")
def test_device_cuda_without_cuda_is_one_line(trained_checkpoint):
    result = invoke("predict", "examples/astronaut.jpg", "-c", trained_checkpoint, "--device", "cuda")
    assert result.exit_code == 1 and "CUDA is not available" in result.stderr
    assert "Traceback" not in result.output


def test_resume_works_from_another_directory(tmp_path, monkeypatch):
    """data.root is stored absolute, so a run started with a relative path resumes from anywhere."""
    from conftest import write_fer_folders

    (tmp_path / "work").mkdir()
    write_fer_folders(tmp_path / "work" / "data")
    monkeypatch.chdir(tmp_path / "work")
    overrides = tiny_overrides(Path("data"), Path("runs"), epochs=1)
    first = invoke("train", *overrides)
    assert first.exit_code == 0, first.output
    run_dir = (tmp_path / "work" / "runs" / "tiny").resolve()
    monkeypatch.chdir(tmp_path)
    resumed = invoke("train", "--resume", run_dir, "train.epochs=2")
    assert resumed.exit_code == 0, resumed.output
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 2


def test_ctrl_c_before_the_first_epoch_offers_no_resume(tmp_path, fer_folders, monkeypatch):
    import fercli.commands.train as train_command

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "fit", interrupted)
    result = invoke("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    assert result.exit_code == 130 and "nothing to resume" in result.stderr and "--resume" not in result.stderr


def test_runs_lists_state_and_how_to_resume(tmp_path, fer_folders):
    assert invoke("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1)).exit_code == 0
    stopped = tmp_path / "runs" / "tiny"
    config = stopped / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 1", "epochs: 3"))  # as if stopped after 1 of 3
    for name in ("last.pt", "config.yaml"):
        os.utime(stopped / name, (0, 0))  # not written recently: not running
    result = invoke("runs", tmp_path / "runs", "--json")
    [status] = json.loads(result.stdout)
    assert status["epochs_done"] == 1 and status["epochs_planned"] == 3 and status["state"] == "stopped"
    assert status["resume"] == f"fer train --resume {stopped}" and 0 <= status["best_val_acc"] <= 1
    one_epoch = float(next(csv.DictReader(open(stopped / "metrics.csv")))["seconds"])
    assert status["minutes_left"] == round(2 * one_epoch / 60, 1)  # two epochs left at the pace of the one done
    table = invoke("runs", tmp_path / "runs")
    assert "1/3" in table.stdout and f"fer train --resume {stopped} (2 epochs left, about" in table.stdout
    assert f"training runs in {tmp_path / 'runs'}" in table.stdout and "│ tiny " in table.stdout
    starting = tmp_path / "runs" / "fresh"  # in its first epoch: config.yaml only, just written
    starting.mkdir()
    (starting / "config.yaml").write_text(config.read_text())
    statuses = {Path(s["run"]).name: s for s in json.loads(invoke("runs", tmp_path / "runs", "--json").stdout)}
    assert {name: s["state"] for name, s in statuses.items()} == {"tiny": "stopped", "fresh": "running"}
    assert statuses["fresh"]["minutes_left"] is None  # no epoch done yet: no pace to go by
    assert invoke("runs", tmp_path / "nowhere").exit_code == 1


def test_a_run_in_training_is_held_and_a_second_trainer_is_refused(tmp_path, fer_folders):
    """train.lock says whether a process trains the run, whenever its files were last written, and stops two
    trainings from writing one run's checkpoints; the OS drops the lock when the process dies, even by kill -9."""
    assert invoke("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1)).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 1", "epochs: 3"))
    for name in ("last.pt", "config.yaml"):
        os.utime(run_dir / name, (0, 0))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from fercli.runs import hold_run\nlock = hold_run(Path(sys.argv[1]))\n"
                               "print('held', flush=True)\ntime.sleep(60)", str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        [status] = json.loads(invoke("runs", tmp_path / "runs", "--json").stdout)
        assert status["state"] == "running"  # its files are old, but a process holds it
        before = config.read_text(), (run_dir / "last.pt").read_bytes()
        second = invoke("train", "--resume", run_dir)
        assert second.exit_code == 1 and f"pid {holder.pid}" in second.stderr and "Traceback" not in second.stderr
        assert (config.read_text(), (run_dir / "last.pt").read_bytes()) == before  # the refused trainer wrote nothing
    finally:
        holder.kill()
        holder.wait()
    [status] = json.loads(invoke("runs", tmp_path / "runs", "--json").stdout)
    assert status["state"] == "stopped"


def test_version_short_help_and_option_bounds(tmp_path, trained_checkpoint, fer_folders):
    assert invoke("--version").stdout.strip().startswith("fer ")
    assert "predict" in invoke("-h").stdout
    for args in (["visualize", "--n", 10000], ["visualize", "--seed", -1], ["eval", "--batch-size", 0]):
        result = invoke(*args, "-c", trained_checkpoint, "--data", fer_folders)
        assert result.exit_code == 2 and "Traceback" not in result.output, args
    escape = invoke("eval", "-c", trained_checkpoint, "--data", fer_folders, "--name", "../../outside")
    assert escape.exit_code == 1 and "plain folder name" in escape.stderr
    assert not (tmp_path.parent / "outside").exists()


def test_predict_needs_no_training_stack_and_train_names_the_extra(tmp_path):
    """The base install has no PyTorch, pandas, scikit-learn or matplotlib: predict (photos and videos, with the
    video's timeline.png) works, train says which extra to install."""
    block = "import sys\nfor name in ('torch', 'pandas', 'sklearn', 'matplotlib'):\n    sys.modules[name] = None\n"
    def fer(*args):
        code = block + f"from fercli.cli import app\napp({list(args)!r}, prog_name='fer')"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    root = Path(__file__).parents[1]
    predicted = fer("predict", str(root / "examples/astronaut.jpg"), "--json")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["faces"][0]["label"] == "happy"
    photo = cv2.resize(cv2.imread(str(root / "examples/astronaut.jpg")), (320, 320))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 320))
    for _ in range(5):
        writer.write(photo)
    writer.release()
    video = fer("predict", "clip.avi")
    assert video.returncode == 0, video.stderr
    assert cv2.imread(str(tmp_path / "runs" / "predict" / "clip" / "timeline.png")).shape[1] == 1200
    trained = fer("train", "--config", str(root / "configs/quick.yaml"), f"train.project={tmp_path}")
    assert trained.returncode == 1 and 'pip install "fercli[train]"' in trained.stderr and "Traceback" not in trained.stderr
    evaluated = fer("eval", "--data", str(tmp_path))
    assert evaluated.returncode == 1 and "fer eval needs" in evaluated.stderr


def test_shell_completion_completes_commands_and_options():
    """Typer's completion: the installed script asks fer itself, which answers with commands and options."""
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_FER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        return subprocess.run([sys.executable, "-m", "fercli"], env=env, capture_output=True, text=True).stdout.split()
    assert complete("fer pre") == ["predict"]
    assert "--detect-size" in complete("fer predict --det")
    assert "--install-completion" in invoke("-h").stdout


def test_one_set_of_option_names_and_json_everywhere(tmp_path, fer_folders, trained_checkpoint):
    """-o/--output names every output path (old --out and --save still work); train, visualize and export print
    JSON with --json; help shows metavars and an example, no Python type names."""
    trained = invoke("train", *tiny_overrides(fer_folders, tmp_path / "more", epochs=1), "--json")
    summary = json.loads(trained.stdout)
    assert summary["run"] == str(tmp_path / "more" / "tiny") and summary["epochs"] == 1 and 0 <= summary["best_val_acc"] <= 1
    grid = invoke("visualize", "-n", 4, "-c", trained_checkpoint, "--data", fer_folders, "-o", tmp_path / "g.png", "--json")
    shown = json.loads(grid.stdout)
    assert shown["output"] == str(tmp_path / "g.png") and shown["images"] == 4 and 0 <= shown["right"] <= 4
    assert (tmp_path / "g.png").stat().st_size > 0
    assert invoke("visualize", "-n", 4, "-c", trained_checkpoint, "--data", fer_folders, "--out", tmp_path / "h.png").exit_code == 0
    photo = Path(__file__).parents[1] / "examples" / "astronaut.jpg"
    for option in ("-o", "--output", "--save"):
        saved = invoke("predict", photo, option, tmp_path / option.strip("-"))
        assert saved.exit_code == 0 and (tmp_path / option.strip("-") / "astronaut_fer.jpg").is_file(), option
    exported = invoke("export", "-c", trained_checkpoint, "-o", tmp_path / "m.onnx", "--device", "cpu", "--json")
    assert json.loads(exported.stdout) == {"output": str(tmp_path / "m.onnx"), "bytes": (tmp_path / "m.onnx").stat().st_size,
                                           "int8": False}
    for command in ("train", "eval", "visualize", "predict", "serve", "audit", "runs", "export"):
        text = invoke(command, "-h").stdout
        assert "Example: fer " in text, command
        assert not any(t in text for t in ("<list", "<str>", "<path>", "<int", "<float")), command


def test_scoring_and_big_grids_show_progress(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    """Ten-crop evaluation and grids report every image to a progress bar (eval --tta tencrop was silent for 98 s)."""
    from fercli import console

    bars = []

    class Recorder:
        def __init__(self, label, total):
            self.label, self.total, self.done = label, total, 0
            bars.append(self)

        def __enter__(self):
            return self

        def advance(self, n):
            self.done += n

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(console, "WorkProgress", Recorder)
    monkeypatch.chdir(tmp_path)
    assert invoke("eval", "-c", trained_checkpoint, "--data", fer_folders, "--tta", "tencrop").exit_code == 0
    scoring = [b for b in bars if "tencrop" in b.label]
    assert scoring and scoring[0].total == 21 and scoring[0].done == 21
    assert invoke("visualize", "-n", 9, "-c", trained_checkpoint, "--data", fer_folders).exit_code == 0
    assert bars[-1].label == "drawing 9 images" and bars[-1].done == bars[-1].total == 10


def test_eval_pictures_name_the_model_and_split(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    from fercli import plots

    titles = []
    real = plots.plot_confusion_matrix
    monkeypatch.setattr(plots, "plot_confusion_matrix", lambda *a, **k: (titles.append(k["title"]), real(*a, **k)))
    monkeypatch.chdir(tmp_path)
    assert invoke("eval", "-c", trained_checkpoint, "--data", fer_folders, "--split", "val").exit_code == 0
    assert len(titles) == 2 and all(t.startswith(f"best.pt on {fer_folders.name} val (") for t in titles), titles
    assert (tmp_path / "runs" / "eval" / "exp" / "confusion_matrix.png").stat().st_size > 0


def test_a_benchmark_given_a_bad_checkpoint_says_one_line(tmp_path, trained_checkpoint):
    """The benchmark scripts report what fer reports: one line and fer's exit code, not a traceback."""
    missing = tmp_path / "no_such.pt"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "model_selection.py"
    done = subprocess.run([sys.executable, str(script), str(trained_checkpoint), str(missing), "--data", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and "no_such.pt" in done.stderr, done.stderr


def test_model_selection_compares_each_candidate_with_the_first_per_tta(tmp_path, fer_folders, trained_checkpoint):
    """The release rule reads candidate against shipped model with each TTA, so the script prints exactly that."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "model_selection.py"
    twin = tmp_path / "twin.pt"
    shutil.copy(trained_checkpoint, twin)
    done = subprocess.run([sys.executable, str(script), str(trained_checkpoint), str(twin),
                           "--data", str(fer_folders), "--tta", "none", "flip"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("against the first checkpoint"))
    pairs = [line.strip() for line in lines[start + 1:]]
    assert len(pairs) == 2 and [p.split("TTA ")[1].split(":")[0] for p in pairs] == ["none", "flip"], pairs
    assert all(": +0 images (right only for the first on 0, only for the second on 0); McNemar p = 1.00" in p
               for p in pairs), pairs
