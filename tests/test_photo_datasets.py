"""Photo datasets through the face pipeline: ``fer eval --detect`` and ``data.faces=detect``."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from fercli.cli import app
from fercli.config import DataConfig, load_config
from fercli.data.dataset import load_dataset
from fercli.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def pasted(face: np.ndarray, canvas: tuple[int, int], at: tuple[int, int], gray: bool = False) -> np.ndarray:
    """The astronaut's face (a BGR crop) pasted into a larger, plain canvas: a photo whose face must be found."""
    photo = np.full((*canvas, 3), 170, np.uint8)
    y, x = at
    photo[y : y + face.shape[0], x : x + face.shape[1]] = face
    return cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY) if gray else photo


@pytest.fixture
def photo_folders(tmp_path) -> Path:
    """happy/: the face pasted into photos of other sizes, colour and gray; sad/: one with a face, one with none and
    one that is not an image at all."""
    face = cv2.imread(str(EXAMPLES / "astronaut.jpg"))[20:260, 140:320]  # her head, 180x240
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir()
    cv2.imwrite(str(root / "happy" / "wide.jpg"), pasted(face, (480, 900), (200, 600)))
    cv2.imwrite(str(root / "happy" / "gray.png"), pasted(face, (700, 500), (40, 30), gray=True))
    cv2.imwrite(str(root / "sad" / "face.jpg"), pasted(face, (300, 300), (30, 60)))
    cv2.imwrite(str(root / "sad" / "wall.jpg"), np.full((400, 600, 3), 120, np.uint8))
    (root / "sad" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_a_photo_dataset_keeps_each_face_found_and_marks_the_misses(photo_folders):
    warnings = []
    data = load_dataset(DataConfig(root=str(photo_folders), faces="detect", skip_bad=True), warnings.append)
    split = data.split("all")
    found = dict(zip((Path(s).name for s in split.sources), split.found.tolist()))
    assert found == {"wide.jpg": True, "gray.png": True, "face.jpg": True, "wall.jpg": False}
    assert split.images.shape[1:] == (1, 48, 48)
    assert len(data.bad) == 1 and "broken.jpg" in data.bad[0] and "broken.jpg" in warnings[0]
    # The crop is the face, not the canvas: the face's crops resemble each other more than the wall.
    crops = {Path(s).name: img[0].float() for s, img in zip(split.sources, split.images)}
    assert (crops["wide.jpg"] - crops["face.jpg"]).abs().mean() < (crops["wide.jpg"] - crops["wall.jpg"]).abs().mean()


def test_crops_and_photos_of_one_folder_are_cached_apart(photo_folders):
    crops = load_dataset(DataConfig(root=str(photo_folders), skip_bad=True)).split("all")
    photos = load_dataset(DataConfig(root=str(photo_folders), faces="detect", skip_bad=True)).split("all")
    assert crops.found is None and photos.found is not None
    again = load_dataset(DataConfig(root=str(photo_folders), faces="detect", skip_bad=True)).split("all")  # the cache
    assert again.found.tolist() == photos.found.tolist() and bool((again.images == photos.images).all())


def test_eval_detect_counts_a_photo_without_a_face_as_wrong(photo_folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "--data", str(photo_folders), "--split", "all", "--detect", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    detect = report["detect"]
    assert (detect["images"], detect["found"]) == (4, 3) and report["images"] == 3 and report["faces"] == "detect"
    # The shipped model reads her smile as happy: both happy photos right, the sad face wrong, the wall a miss.
    assert detect["accuracy"] == pytest.approx(2 / 4) and detect["accuracy_on_found"] == pytest.approx(2 / 3)
    assert detect["balanced_accuracy"] == pytest.approx((2 / 2 + 0 / 2) / 2)
    assert "1 unreadable image" in result.stderr or "skipping 1 unreadable" in result.stderr


def test_eval_detect_table_leads_with_the_photos_accuracy(photo_folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "--data", str(photo_folders), "--split", "all", "--detect"])
    assert result.exit_code == 0, result.stderr
    assert "no face found = wrong" in result.stdout and "3 of 4" in result.stdout


def test_detect_needs_gray_crops():
    with pytest.raises(ConfigError, match="data.faces=detect"):
        load_config(None, ["data.faces=detect", "data.channels=3"])
    with pytest.raises(ConfigError, match="data.faces"):
        load_config(None, ["data.faces=find"])


def test_no_data_given_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--config", "quick"])
    assert result.exit_code == 1 and "no data given: pass --data PATH" in result.stderr


def test_the_wild_benchmark_scores_each_set_its_own_way_and_pairs_models(photo_folders, tmp_path):
    """benchmarks/wild.py on a tiny suite: two photo sets through the pipeline (a miss counts as wrong), one crop set."""
    import shutil
    import subprocess
    import sys

    wild = tmp_path / "wild"
    for name in ("tfeid", "jaffe"):
        shutil.copytree(photo_folders, wild / name)
        (wild / name / "sad" / "broken.jpg").unlink()
    crop = cv2.resize(cv2.imread(str(EXAMPLES / "astronaut.jpg"))[30:250, 150:310], (96, 96))
    for label in ("happy", "sad"):
        (wild / "lfw_expressions" / label).mkdir(parents=True)
        cv2.imwrite(str(wild / "lfw_expressions" / label / "crop.jpg"), crop)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "wild.py"
    done = subprocess.run([sys.executable, str(script), "fer2013", "ferplus", "fer2013+fer2013", "--wild", str(wild), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    shipped = report["models"]["fer2013"]
    assert shipped["sets"]["tfeid"]["found_rate"] == pytest.approx(3 / 4)
    assert shipped["sets"]["tfeid"]["accuracy"] == pytest.approx(2 / 4)  # the wall is a miss, so wrong
    assert shipped["sets"]["lfw_expressions"]["images"] == 2 and shipped["sets"]["lfw_expressions"]["found_rate"] == 1.0
    means = [shipped["sets"][s]["balanced_accuracy"] for s in report["sets"]]
    assert shipped["mean_balanced_accuracy"] == pytest.approx(sum(means) / 3)
    paired = report["models"]["ferplus"]["against_first"]
    assert set(paired) == {"tfeid", "jaffe", "lfw_expressions", "suite"}
    twice = report["models"]["fer2013 + fer2013"]  # an ensemble of a model with itself answers as the model
    assert [twice["sets"][s]["accuracy"] for s in report["sets"]] == [shipped["sets"][s]["accuracy"] for s in report["sets"]]


def test_the_wild_benchmark_names_a_missing_revision_in_one_line(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "wild.py"
    done = subprocess.run([sys.executable, str(script), "nosuchrev:checkpoints/fer_vgg.onnx", "--wild", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "not in git" in done.stderr and "Traceback" not in done.stderr
