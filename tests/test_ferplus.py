"""FER+ majority labels by FER+'s protocol, and fer eval --labels ferplus on a synthetic votes file."""

import json

import numpy as np
from typer.testing import CliRunner

from fercli.classifier import open_classifier
from fercli.cli import app
from fercli.ferplus import VOTE_COLUMNS, majority

runner = CliRunner()


def votes(**counts) -> np.ndarray:
    return np.array([counts.get(c, 0) for c in VOTE_COLUMNS])


def test_majority_by_hand():
    assert majority(votes(happiness=6, neutral=4)) == "happy"
    assert majority(votes(happiness=5, neutral=5)) is None  # a tie is no strict majority
    assert majority(votes(anger=5, sadness=3, fear=1, disgust=1)) == "angry"  # single stray votes are dropped first
    assert majority(votes(anger=4, sadness=3, fear=3)) is None
    assert majority(votes(unknown=7, happiness=3)) is None and majority(votes(NF=10)) is None
    assert majority(votes(contempt=8, neutral=2)) == "contempt"
    assert majority(votes()) is None


def test_eval_with_ferplus_labels(tmp_path, monkeypatch, fer_folders, trained_checkpoint):
    """Votes that flip every sad test image to happy, one image without votes and one contempt majority."""
    rows = [",".join(("file", *VOTE_COLUMNS))]
    tests = sorted(p for p in (fer_folders / "test").rglob("PrivateTest_*"))
    for i, path in enumerate(tests):
        label = path.parent.name
        counts = {"happy": "happiness", "sad": "happiness", "angry": "anger", "neutral": "neutral", "fear": "fear",
                  "surprise": "surprise", "disgust": "disgust"}
        row = votes(**{counts[label]: 10}) if i > 1 else (votes() if i == 0 else votes(contempt=9, neutral=1))
        rows.append(",".join((path.relative_to(fer_folders).as_posix(), *map(str, row))))
    (fer_folders / "ferplus.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(fer_folders), "--labels", "ferplus",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    info = report["ferplus"]
    assert info["dropped"] == {"no_votes": 1, "no_majority": 0, "not_in_model": 1}
    assert report["images"] == info["kept"] == len(tests) - 2 and report["labels"] == "ferplus"
    sad_share = sum(p.parent.name == "sad" for p in tests[2:]) / (len(tests) - 2)
    assert info["agree_with_fer2013"] == round(1 - sad_share, 4)


def test_ferplus_without_votes_file_is_one_line(tmp_path, monkeypatch, fer_folders, trained_checkpoint):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(fer_folders), "--labels", "ferplus"])
    assert result.exit_code == 1 and "no FER+ votes file" in result.stderr


def test_training_on_ferplus_labels_gives_an_8_class_model(tmp_path, fer_folders, monkeypatch):
    """data.labels=ferplus: FER+ majorities, contempt included; images without a majority are left out."""
    from conftest import tiny_overrides
    from fercli.checkpoint import read_checkpoint

    rows = [",".join(("file", *VOTE_COLUMNS))]
    for i, path in enumerate(sorted(p for p in fer_folders.rglob("*.jpg"))):
        row = votes(contempt=10) if i % 7 == 0 else votes(happiness=5, neutral=5) if i % 7 == 1 else votes(sadness=10)
        rows.append(",".join((path.relative_to(fer_folders).as_posix(), *map(str, row))))
    (fer_folders / "ferplus.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.labels=ferplus"])
    assert result.exit_code == 0, result.output
    assert "without a FER+ majority left out" in result.stderr
    payload = read_checkpoint(tmp_path / "runs" / "tiny" / "best.pt")
    assert payload["classes"] == ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert payload["config"]["data"]["labels"] == "ferplus"
    model = open_classifier(tmp_path / "runs" / "tiny" / "best.pt", device="cpu")
    assert model.probabilities(np.zeros((2, 48, 48), np.uint8)).shape == (2, 8)
    monkeypatch.chdir(tmp_path)  # fer eval writes runs/eval/ here
    scored = runner.invoke(app, ["eval", "-c", str(tmp_path / "runs" / "tiny" / "best.pt"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["labels"] == "ferplus"  # a FER+ model is scored on FER+ labels by default


def test_the_shipped_ferplus_model_by_name():
    """-c ferplus: the shipped 8-class FER+ model (its ONNX export), scored on FER+ labels by default."""
    from pathlib import Path

    from fercli.shipped import shipped_model

    examples = Path(__file__).resolve().parents[1] / "examples"
    result = runner.invoke(app, ["predict", str(examples / "astronaut.jpg"), "-c", "ferplus", "--json"])
    assert result.exit_code == 0, result.output
    face = json.loads(result.stdout)["faces"][0]
    assert len(face["scores"]) == 8 and "contempt" in face["scores"] and face["label"] == "happy"
    model = open_classifier(shipped_model("ferplus", prefer_onnx=True))
    assert model.meta["labels"] == "ferplus" and len(model.classes) == 8
