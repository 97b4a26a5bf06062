"""Twins: found by thumbnail, confirmed by pixels; fer audit's counts and eval's score without train twins."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from conftest import write_fer_folders
from fercli.evaluate.audit import find_twins, has_twin_in
from fercli.cli import app

runner = CliRunner()


def faces(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_exact_and_near_twins_are_found_and_others_are_not():
    train, test = faces(50, 0), faces(10, 1)
    test[2] = train[7]  # exact
    noisy = train[30].astype(np.int16) + np.random.default_rng(2).integers(-3, 4, (48, 48))
    test[5] = np.clip(noisy, 0, 255).astype(np.uint8)  # near: a little noise on every pixel
    test[8] = np.clip(train[11].astype(np.int16) + 40, 0, 255).astype(np.uint8)  # much brighter: another image
    twins = {(t.a, t.b): t.difference for t in find_twins(test, train)}
    assert set(twins) == {(2, 7), (5, 30)} and twins[(2, 7)] == 0 and 0 < twins[(5, 30)] < 3
    assert has_twin_in(test, train).tolist() == [i in (2, 5) for i in range(10)]


def test_twins_within_one_set_are_each_pair_once():
    images = faces(20, 3)
    images[4] = images[9] = images[13]
    assert sorted((t.a, t.b) for t in find_twins(images)) == [(4, 9), (4, 13), (9, 13)]


def plant_twins(root):
    """Copy two training images into the test split (one under another class folder: a conflicting label)."""
    happy = sorted((root / "train" / "happy").iterdir())
    Image.open(happy[0]).save(root / "test" / "happy" / "PrivateTest_twin0.png")
    Image.open(happy[1]).save(root / "test" / "sad" / "PrivateTest_twin1.png")


def test_audit_counts_twins_and_conflicts(tmp_path, monkeypatch):
    root = write_fer_folders(tmp_path / "fer2013")
    plant_twins(root)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["audit", "--data", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    test_train = next(r for r in report["twins"] if r["pair"] == "test ~ train")
    assert test_train["twin_pairs"] >= 2 and test_train["conflicting_labels"] >= 1
    rows = (tmp_path / "runs" / "audit" / "exp" / "twins.csv").read_text().splitlines()
    assert any("PrivateTest_twin1.png" in row and ",sad," in row and ",happy," in row for row in rows)


def test_eval_reports_the_score_without_train_twins(tmp_path, monkeypatch, trained_checkpoint):
    root = write_fer_folders(tmp_path / "fer2013b")
    plant_twins(root)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(root), "--json"])
    report = json.loads(result.stdout)
    clean = report["clean"]
    assert clean["twins_in_train"] >= 2 and clean["images"] == report["images"] - clean["twins_in_train"]
    everything = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(root), "--split", "all", "--json"])
    whole = json.loads(everything.stdout)
    assert whole["images"] == sum(1 for _ in root.rglob("*.*")) and "clean" not in whole
