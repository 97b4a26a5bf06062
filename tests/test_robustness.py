"""Bad input of every kind: one line on stderr, a non-zero exit, never a traceback, nothing lost."""

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import tiny_overrides, write_csv
from fercli.cli import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def one_error_line(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims to be width x height but holds no pixel data: a decompression bomb stand-in."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# ---------------------------------------------------------------- training input


@pytest.mark.parametrize("override, fragments", [
    ("train.epoch=3", ["unknown config key 'train.epoch'", "did you mean train.epochs?"]),
    ("trian.epochs=3", ["did you mean train?"]),
    ("train.epochs=many", ["train.epochs: expected int, got 'many'"]),
    ("model.name=vgg17", ["unknown model 'vgg17'", "did you mean vgg?"]),
    ("optim.name=adagrad", ["unknown optimizer 'adagrad'"]),
    ("train.epochs=0", ["train.epochs=0: must be 1 or more"]),
    ("train.epochs=-1", ["train.epochs=-1: must be 1 or more"]),
    ("train.batch_size=0", ["train.batch_size=0: must be 1 or more"]),
    ("train.batch_size=100000", ["more than the 56 training images"]),
    ("optim.lr=-1", ["optim.lr=-1.0: must be a positive number"]),
    ("data.image_size=0", ["data.image_size=0: must be from 8 to 1024"]),
    ("data.channels=2", ["data.channels=2: must be 1 (gray) or 3"]),
    ("data.val_fraction=1.5", ["data.val_fraction=1.5: must be between 0 and 0.9"]),
    ("augment.crop=60", ["augment.crop=60: must be 0 (no crop) or from 8 to data.image_size (48)"]),
    ("train.init=nothing.pt", ["train.init: checkpoint not found", "nothing.pt"]),
])
def test_config_mistakes(tmp_path, fer_folders, override, fragments):
    result = run("train", f"data.root={fer_folders}", f"train.project={tmp_path}", override)
    assert result.exit_code in (1, 2)
    one_error_line(result, result.exit_code, *fragments)


def test_no_run_folder_is_left_by_a_failed_start(tmp_path, fer_folders):
    assert run("train", f"data.root={fer_folders}", f"train.project={tmp_path / 'runs'}", "train.epochs=0").exit_code == 2
    assert run("train", f"data.root={fer_folders}", f"train.project={tmp_path / 'runs'}",
               "train.batch_size=100000").exit_code == 2
    assert run("train", f"data.root={fer_folders}", f"train.project={tmp_path / 'runs'}",
               f"train.init={tmp_path / 'none.pt'}").exit_code in (1, 2)
    assert not (tmp_path / "runs").exists()
    afile = tmp_path / "afile"
    afile.write_text("mine")
    one_error_line(run("train", f"data.root={fer_folders}", f"train.project={afile}", "train.batch_size=8"), 2,
                   "a file, not a folder")
    assert afile.read_text() == "mine"


def test_missing_config_file_and_data(tmp_path):
    one_error_line(run("train", "--config", tmp_path / "nope.yaml"), 2, "config file not found")
    one_error_line(run("train", f"data.root={tmp_path / 'none'}", f"train.project={tmp_path}"), 1, "data not found")


def test_empty_folder_and_folder_without_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    one_error_line(run("train", f"data.root={tmp_path / 'empty'}", f"train.project={tmp_path}"), 1, "no images found")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(flat / "a.png")
    one_error_line(run("train", f"data.root={flat}", f"train.project={tmp_path}"), 1, "directly in this folder", "<class>")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda text: text.replace("emotion,pixels,Usage", "label,values,Usage", 1), "expected emotion,pixels"),
    (lambda text: text.replace("\n0,", "\n9,", 1), "emotion 9 is outside 0-6"),
    (lambda text: text.replace("\n0,", "\n0,1 2 3 ", 1), "2307 values, expected 2304"),
])
def test_csv_problems(tmp_path, mutate, fragment):
    csv = write_csv(tmp_path / "fer2013.csv", per_class=1)
    csv.write_text(mutate(csv.read_text()))
    one_error_line(run("train", f"data.root={csv}", f"train.project={tmp_path}"), 1, fragment)


def test_bad_images_are_counted_and_skippable(tmp_path, fer_folders):
    (fer_folders / "train" / "sad" / "Training_empty.jpg").write_bytes(b"")
    (fer_folders / "train" / "sad" / "Training_text.jpg").write_text("hello")
    result = run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    one_error_line(result, 1, "2 unreadable image(s)", "data.skip_bad=true")
    assert not (tmp_path / "runs").exists()  # found before training starts
    ok = run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.skip_bad=true")
    assert ok.exit_code == 0 and "skipping 2 unreadable" in ok.stderr


def test_eval_leaves_unreadable_images_out_and_says_so(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    """eval has no data.skip_bad to pass: it used to point at one anyway; now it skips them with a counted warning."""
    monkeypatch.chdir(tmp_path)
    (fer_folders / "test" / "sad" / "PrivateTest_empty.jpg").write_bytes(b"")
    result = run("eval", "-c", trained_checkpoint, "--data", fer_folders, "--json")
    assert result.exit_code == 0 and "skipping 1 unreadable" in result.stderr and "skip_bad" not in result.stderr


# ---------------------------------------------------------------- images given to predict


def image_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected status)."""
    cases = {}
    cases["zero_byte"] = (tmp / "zero.png", "error")
    cases["zero_byte"][0].write_bytes(b"")
    cases["text_as_png"] = (tmp / "text.png", "error")
    cases["text_as_png"][0].write_text("I am not a picture")
    src = (EXAMPLES / "astronaut.jpg").read_bytes()
    cases["truncated_jpeg"] = (tmp / "cut.jpg", "error")
    cases["truncated_jpeg"][0].write_bytes(src[: len(src) // 3])
    cases["huge_png"] = (png_header_only(tmp / "huge.png", 20000, 20000), "error")
    gray = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    cases["16_bit"] = (tmp / "deep.png", "ok")
    Image.fromarray(gray).save(cases["16_bit"][0])
    rgb = Image.open(EXAMPLES / "astronaut.jpg").resize((64, 64))
    cases["palette"] = (tmp / "pal.png", "ok")
    rgb.convert("P").save(cases["palette"][0])
    cases["cmyk"] = (tmp / "cmyk.jpg", "ok")
    rgb.convert("CMYK").save(cases["cmyk"][0])
    cases["rgba"] = (tmp / "alpha.png", "ok")
    rgb.convert("RGBA").save(cases["rgba"][0])
    return cases


def test_every_odd_image_gets_a_status(tmp_path, trained_checkpoint):
    import json

    cases = image_cases(tmp_path)
    result = run("predict", *[p for p, _ in cases.values()], "-c", trained_checkpoint, "--json")
    assert result.exit_code == 1  # some inputs were unreadable
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    for name, (path, status) in cases.items():
        assert records[path.name]["status"] == status, (name, records[path.name])
    assert "too large" in records["huge.png"]["error"]
    assert "empty file" in records["zero.png"]["error"]


def test_huge_jpeg_is_decoded_downscaled(tmp_path, trained_checkpoint):
    big = tmp_path / "big.jpg"
    Image.new("L", (9000, 9000), 128).save(big, quality=50)  # 81 MP: over the limit at full size
    result = run("predict", big, "-c", trained_checkpoint, "--json", "--no-detect")
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- checkpoints


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_problems(tmp_path, trained_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    one_error_line(run("eval", "-c", junk, "--data", tmp_path), 1, "not a readable checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    one_error_line(run("eval", "-c", plain, "--data", tmp_path), 1, "not a fer checkpoint")
    evil = tmp_path / "evil.pt"
    torch.save({"payload": Exploit()}, evil)
    one_error_line(run("predict", EXAMPLES / "astronaut.jpg", "-c", evil), 1, "refused to load")
    assert not (tmp_path / "pwned").exists()
    old = torch.load(trained_checkpoint, weights_only=True)
    old["format_version"] = 0
    torch.save(old, tmp_path / "old.pt")
    one_error_line(run("eval", "-c", tmp_path / "old.pt", "--data", tmp_path), 1, "checkpoint format 0")
    one_error_line(run("eval", "-c", tmp_path / "missing.pt"), 1, "checkpoint not found")


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["eval", "-c", str(tmp_path / "missing.pt"), "--debug"])
    assert result.exit_code != 0 and result.exception is not None


# ---------------------------------------------------------------- interrupted training


def start_training(tmp_path, fer_folders, *extra):
    # Far more epochs than can finish: the signal must always land mid-run, never after the end.
    args = [sys.executable, "-m", "fercli", "train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=100_000), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A shell that runs pytest in the background (`nohup pytest &`, some CI runners) hands its children an
    # ignored SIGINT, and Python then installs no KeyboardInterrupt handler; a terminal's Ctrl-C never is.
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_epochs(run_dir: Path, epochs: int, timeout: float = 120) -> None:
    """Until last.pt holds at least ``epochs`` epochs. Each epoch writes its metrics.csv row before its last.pt, so
    a row for epoch n says nothing of last.pt yet; the row for epoch n + 1 comes after last.pt for epoch n."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        metrics = run_dir / "metrics.csv"
        if metrics.is_file() and len(metrics.read_text().splitlines()) > epochs + 1:  # a header, then epochs + 1 rows
            return
        time.sleep(0.05)
    raise AssertionError("training did not get far enough")


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path, fer_folders):
    import pandas as pd

    proc = start_training(tmp_path, fer_folders)
    run_dir = tmp_path / "runs" / "tiny"
    wait_for_epochs(run_dir, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = torch.load(run_dir / "last.pt", weights_only=True)  # never half-written
    frame = pd.read_csv(run_dir / "metrics.csv")  # complete rows only
    assert frame["val_acc"].notna().all() and len(frame) >= last["train_state"]["epoch"] >= 2
    result = run("train", "--resume", run_dir, "train.epochs=" + str(last["train_state"]["epoch"] + 1))
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == list(range(1, last["train_state"]["epoch"] + 2))


@pytest.mark.slow
def test_ctrl_c_exits_cleanly_with_resume_hint(tmp_path, fer_folders):
    proc = start_training(tmp_path, fer_folders)
    wait_for_epochs(tmp_path / "runs" / "tiny", 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "fer train --resume" in stderr and "Traceback" not in stderr
    torch.load(tmp_path / "runs" / "tiny" / "last.pt", weights_only=True)


# ---------------------------------------------------------------- predict: names, collisions, tiny images


def test_file_names_are_printed_literally_not_as_markup(tmp_path, trained_checkpoint):
    """A name holding "[/b]" used to crash Rich's markup parser; "[red]" used to vanish from the output."""
    folder = tmp_path / "shots"
    (folder / "x[").mkdir(parents=True)
    for name in ("[red]holiday.png", "x[/b].png"):  # the second is the file b].png in the folder x[
        Image.fromarray(np.full((48, 48), 100, np.uint8)).save(folder / name)
    missing = folder / "gone[/i].jpg"
    result = run("predict", folder, missing, "-c", trained_checkpoint)
    assert result.exit_code == 1 and "Traceback" not in result.output  # only the missing file failed
    assert "[red]holiday.png" in result.stdout and "x[/b].png" in result.stdout
    assert "gone[/i].jpg" in result.stderr


def test_annotated_images_never_overwrite_each_other(tmp_path, trained_checkpoint):
    """a/face.jpg, b/face.jpg and a/face.png all want out/face_fer.jpg: each gets its own file."""
    for sub, suffix in (("a", ".jpg"), ("b", ".jpg"), ("a", ".png")):
        (tmp_path / sub).mkdir(exist_ok=True)
        Image.open(EXAMPLES / "astronaut.jpg").save(tmp_path / sub / f"face{suffix}")
    out = tmp_path / "out"
    result = run("predict", tmp_path / "a", tmp_path / "b", "-c", trained_checkpoint, "--save", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["face_fer-2.jpg", "face_fer-3.jpg", "face_fer.jpg"]


def test_an_image_too_small_for_a_face_is_an_error(tmp_path, trained_checkpoint):
    import json

    dot = tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(dot)
    result = run("predict", dot, "-c", trained_checkpoint, "--json")
    record = json.loads(result.stdout)
    assert result.exit_code == 1 and record["status"] == "error" and "too small (1x1" in record["error"]


def test_train_and_test_class_folders_must_match(tmp_path, fer_folders):
    """test/Happy beside train/happy used to become an eighth class that was never trained (exit 0)."""
    (fer_folders / "test" / "happy").rename(fer_folders / "test" / "Happy")
    result = run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    one_error_line(result, 1, "['Happy'] are not in", "rename them to match")
    assert not (tmp_path / "runs").exists()


def test_an_unreadable_class_folder_stops_training_instead_of_vanishing(tmp_path, fer_folders, monkeypatch):
    """A class folder glob cannot list (a link to nowhere; no permission, simulated: tests may run as root) is
    an error, not a silently smaller model."""
    (fer_folders / "train" / "contempt").symlink_to(tmp_path / "gone")
    result = run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1))
    assert result.exit_code == 1 and "contempt (a link to a missing folder)" in result.stderr
    (fer_folders / "train" / "contempt").unlink()

    from fercli.data import dataset as data

    real_scandir = os.scandir
    def scandir(path):
        if Path(path).name == "sad":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(data.os, "scandir", scandir)
    for command in (["train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1)], ["eval", "--data", fer_folders]):
        result = run(*command)
        assert result.exit_code == 1 and "sad (Permission denied)" in result.stderr and "chmod" in result.stderr, command


def test_a_full_disk_mid_training_is_one_line_and_leaves_no_debris(tmp_path, fer_folders, monkeypatch):
    """The disk fills during epoch 2's checkpoint: one error line with the resume command, no temporary files,
    no 0-byte curves.png (the figure cannot be written either), and epoch 1's last.pt intact."""
    import errno

    from matplotlib.figure import Figure

    from fercli.model import checkpoint

    real_save, saves = checkpoint.torch.save, []
    def save(payload, path):
        if "runs" in Path(path).parts:  # the data cache is saved with torch.save too
            saves.append(path)
        if len(saves) > 2:  # epoch 1 wrote best.pt and last.pt
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, path)
    def savefig(self, path, **kwargs):
        Path(path).write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", save)
    monkeypatch.setattr(Figure, "savefig", savefig)
    result = run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=3))
    run_dir = tmp_path / "runs" / "tiny"
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "No space left on device" in errors[0] and f"fer train --resume {run_dir}" in errors[0]
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.csv", "train.lock"]
    assert torch.load(run_dir / "last.pt", weights_only=True)["train_state"]["epoch"] == 1


def test_a_run_folder_that_cannot_be_written_is_one_line(tmp_path, fer_folders):
    """A project under a file (mkdir fails) and a run whose train.lock cannot be opened (standing in for a read-only
    copy of a run; chmod does not stop root): one line each, saying what to do, and the run left as it was."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    one_error_line(run("train", *tiny_overrides(fer_folders, blocker / "runs", epochs=1)), 1,
                   f"cannot write to {blocker / 'runs'}", "set train.project to a folder you can write to")
    assert run("train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1)).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    (run_dir / "train.lock").unlink()
    (run_dir / "train.lock").mkdir()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    one_error_line(run("train", "--resume", run_dir, "train.epochs=2"), 1,
                   f"cannot write to {run_dir / 'train.lock'}", "resume the copy")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_outputs_that_cannot_be_written_are_one_line_naming_the_path(tmp_path, fer_folders, trained_checkpoint,
                                                                    monkeypatch):
    """A file where an output folder should be: predict --save, export, visualize and eval (runs/ in the working
    directory) each say which path and what to do, with no traceback; nothing is left behind."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    hint = "a file stands where a folder is needed"
    one_error_line(run("predict", EXAMPLES / "astronaut.jpg", "-c", trained_checkpoint, "--json",
                       "--save", blocker / "out.jpg"), 1, f"{blocker}: ", hint)
    one_error_line(run("export", "-c", trained_checkpoint, "-o", blocker / "m.onnx"), 1, f"{blocker}: ", hint)
    one_error_line(run("visualize", "-c", trained_checkpoint, "--data", fer_folders, "--n", "4",
                       "-o", blocker / "grid.png"), 1, f"{blocker}: ", hint)
    work = tmp_path / "work"
    work.mkdir()
    (work / "runs").write_text("a file named runs")
    monkeypatch.chdir(work)
    one_error_line(run("eval", "-c", trained_checkpoint, "--data", fer_folders), 1, str(work / "runs"), hint)
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in work.iterdir()) == ["runs"]


def test_a_diverged_model_is_refused_not_printed_as_nan(tmp_path, fer_folders, trained_checkpoint, monkeypatch):
    """A NaN model made `fer predict --json` print NaN (not JSON) and `fer eval` crash; now: one line each, and a
    training that diverges stops instead of saving one."""
    monkeypatch.chdir(tmp_path)
    payload = torch.load(trained_checkpoint, weights_only=True)
    first = next(k for k, t in payload["state_dict"].items() if t.is_floating_point())
    payload["state_dict"][first] = torch.full_like(payload["state_dict"][first], float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    one_error_line(run("predict", EXAMPLES / "astronaut.jpg", "-c", tmp_path / "nan.pt", "--json"), 1, "NaN or infinity")
    one_error_line(run("eval", "-c", tmp_path / "nan.pt", "--data", fer_folders), 1, "NaN or infinity")

    from fercli.model.torch_backend import TorchClassifier

    monkeypatch.setattr(TorchClassifier, "probabilities", lambda self, crops, tta=None: np.full((len(crops), 7), np.nan))
    one_error_line(run("predict", EXAMPLES / "astronaut.jpg", "-c", trained_checkpoint, "--json"), 1, "gives NaN")

    diverged = run("train", *tiny_overrides(fer_folders, tmp_path / "new", epochs=2), "optim.lr=1e30", "optim.warmup_epochs=0")
    errors = [line for line in diverged.stderr.splitlines() if line.startswith("error:")]
    assert diverged.exit_code == 1 and len(errors) == 1 and "training diverged in epoch 1" in errors[0], diverged.stderr
    assert "lower optim.lr" in errors[0] and not (tmp_path / "new" / "tiny" / "best.pt").exists()
