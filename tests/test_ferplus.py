"""FER+ majority labels by FER+'s protocol, and fer eval --labels ferplus on a synthetic votes file."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fercli.model.classifier import open_classifier
from fercli.cli import app
from fercli.data.ferplus import VOTE_COLUMNS, majority

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


def test_images_fer_plus_never_labelled_are_one_line(tmp_path, monkeypatch, fer_folders, trained_checkpoint):
    """No ferplus.csv beside the data: the packaged votes are used; synthetic images are not in them."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(fer_folders), "--labels", "ferplus"])
    assert result.exit_code == 1 and "none of the 21 images has a FER+ majority label" in result.stderr
    assert "ferplus_votes.csv.gz" in result.stderr


def test_packaged_votes_find_kaggle_files_wherever_the_data_sits(tmp_path):
    """The votes ship inside fer (MIT notice beside them) and match by split/class/file name."""
    from fercli.data.ferplus import PACKAGED_VOTES, votes_lookup

    assert PACKAGED_VOTES.is_file() and PACKAGED_VOTES.with_name("FERPLUS-LICENSE").is_file()
    lookup, where = votes_lookup(tmp_path)  # no ferplus.csv here: the packaged file
    assert where == str(PACKAGED_VOTES)
    # The first rows of the join, as FER+ lists them (neutral, happiness, surprise, sadness, anger, ..., NF).
    assert lookup(str(tmp_path / "x" / "test" / "angry" / "PrivateTest_10131363.jpg")).tolist() == [2, 1, 2, 0, 4, 0, 0, 0, 1, 0]
    assert lookup("test/angry/PrivateTest_10304478.jpg").tolist() == [1, 0, 0, 0, 9, 0, 0, 0, 0, 0]
    assert lookup("train/happy/not_a_fer_file.jpg") is None


def test_microsofts_fer2013new_csv_beside_the_challenge_csv(tmp_path, monkeypatch, trained_checkpoint):
    """fer2013new.csv's row i holds the votes of fer2013.csv's row i (FER+'s own file, unchanged)."""
    from conftest import write_csv

    challenge = write_csv(tmp_path / "csvdata" / "fer2013.csv", per_class=2)
    n = len(challenge.read_text().splitlines()) - 1
    header = "Usage,Image name," + ",".join(VOTE_COLUMNS)
    rows = [header] + [f"x,fer{i:07d}.png," + ",".join(map(str, votes(happiness=10) if i % 2 else votes(NF=10)))
                       for i in range(n)]
    monkeypatch.chdir(tmp_path)
    scored = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(challenge), "--labels", "ferplus", "--json"])
    assert scored.exit_code == 1 and "fer2013new.csv: not found" in scored.stderr
    (challenge.parent / "fer2013new.csv").write_text("\n".join(rows) + "\n")
    scored = runner.invoke(app, ["eval", "-c", str(trained_checkpoint), "--data", str(challenge), "--labels", "ferplus", "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    test_rows = range(n - 14, n)  # PrivateTest: the csv's last 7 classes x 2 rows
    assert report["images"] == sum(i % 2 for i in test_rows) and report["ferplus"]["dropped"]["no_majority"] == 7
    assert report["per_class"][[r["class"] for r in report["per_class"]].index("happy")]["support"] == report["images"]


def test_vote_distribution_by_hand():
    from fercli.data.ferplus import FERPLUS_CLASSES, vote_distribution

    target = vote_distribution(votes(happiness=6, surprise=3, anger=1), FERPLUS_CLASSES)  # the single anger vote drops
    assert target.tolist() == [0, 0, 0, 0, pytest.approx(6 / 9), 0, 0, pytest.approx(3 / 9)]
    seven = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert vote_distribution(votes(contempt=4, neutral=4, unknown=2), seven).tolist() == [0, 0, 0, 0, 1, 0, 0]


def test_training_on_vote_distributions(tmp_path, fer_folders):
    """data.targets=votes: the training split carries each image's vote distribution, and trains on it."""
    from conftest import tiny_overrides
    from fercli.config import load_config
    from fercli.data.dataset import load_dataset
    from fercli.errors import ConfigError
    from fercli.data.ferplus import ferplus_dataset

    rows = [",".join(("file", *VOTE_COLUMNS))]
    for i, path in enumerate(sorted(p for p in fer_folders.rglob("*.jpg"))):
        rows.append(",".join((path.relative_to(fer_folders).as_posix(), *map(str, votes(happiness=7, surprise=3)))))
    (fer_folders / "ferplus.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(None, [*tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.labels=ferplus",
                             "data.targets=votes"])
    data = ferplus_dataset(load_dataset(cfg.data), fer_folders, soft=True)
    train = data.splits["train"]
    assert train.soft.shape == (len(train), 8) and torch.allclose(train.soft.sum(1), torch.ones(len(train)))
    assert train.soft[0].tolist() == [0, 0, 0, 0, pytest.approx(0.7), 0, 0, pytest.approx(0.3)]
    assert data.splits["val"].soft is None  # validation is scored on majority labels
    result = runner.invoke(app, ["train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.labels=ferplus",
                                 "data.targets=votes"])
    assert result.exit_code == 0, result.output
    with pytest.raises(ConfigError, match="set data.labels=ferplus"):
        load_config(None, ["data.targets=votes"])


def test_mixed_targets_soften_fer2013_labels_with_the_votes(tmp_path, fer_folders):
    """data.targets=mixed: 7 classes and FER-2013's labels kept; targets = (1 - w) x label + w x votes, unless the
    image has no votes or only ones outside the seven."""
    from conftest import tiny_overrides
    from fercli.config import load_config
    from fercli.data.dataset import load_dataset
    from fercli.errors import ConfigError
    from fercli.data.ferplus import mix_vote_targets

    files = sorted(p for p in fer_folders.rglob("Training_*.jpg"))
    rows = [",".join(("file", *VOTE_COLUMNS))]
    for i, path in enumerate(files[1:]):  # the first training image has no row at all
        row = votes(contempt=10) if i == 0 else votes(happiness=6, surprise=4)
        rows.append(",".join((path.relative_to(fer_folders).as_posix(), *map(str, row))))
    (fer_folders / "ferplus.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(None, [*tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.targets=mixed",
                             "data.vote_weight=0.4"])
    plain = load_dataset(cfg.data)
    data = mix_vote_targets(plain, fer_folders, 0.4)
    train = data.splits["train"]
    assert data.classes == plain.classes and torch.equal(train.labels, plain.splits["train"].labels)
    by_file = {source: i for i, source in enumerate(train.sources)}
    onehot = torch.nn.functional.one_hot(train.labels, 7).float()
    happy, surprise = data.classes.index("happy"), data.classes.index("surprise")
    for number, path in enumerate(files):
        i = by_file[str(path)]
        expected = onehot[i].clone()
        if number >= 2:  # not the one without votes, not the contempt-only one
            expected = 0.6 * expected
            expected[happy] += 0.4 * 0.6
            expected[surprise] += 0.4 * 0.4
        assert torch.allclose(train.soft[i], expected), path.name
    assert data.splits["val"].soft is None
    result = runner.invoke(app, ["train", *tiny_overrides(fer_folders, tmp_path / "runs", epochs=1), "data.targets=mixed"])
    assert result.exit_code == 0, result.output
    assert "mixed into" in result.stderr
    with pytest.raises(ConfigError, match="set data.labels=fer2013"):
        load_config(None, ["data.labels=ferplus", "data.targets=mixed"])


def test_training_on_ferplus_labels_gives_an_8_class_model(tmp_path, fer_folders, monkeypatch):
    """data.labels=ferplus: FER+ majorities, contempt included; images without a majority are left out."""
    from conftest import tiny_overrides
    from fercli.model.checkpoint import read_checkpoint

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

    from fercli.model.shipped import shipped_model

    examples = Path(__file__).resolve().parents[1] / "examples"
    result = runner.invoke(app, ["predict", str(examples / "astronaut.jpg"), "-c", "ferplus", "--json"])
    assert result.exit_code == 0, result.output
    face = json.loads(result.stdout)["faces"][0]
    assert len(face["scores"]) == 8 and "contempt" in face["scores"] and face["label"] == "happy"
    model = open_classifier(shipped_model("ferplus", prefer_onnx=True))
    assert model.meta["labels"] == "ferplus" and len(model.classes) == 8
