"""fer predict on real photos (examples/) and on synthetic crops."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fercli.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def predict(*args):
    return runner.invoke(app, ["predict", *[str(a) for a in args]])


def test_one_face_in_the_example_photo(trained_checkpoint):
    result = predict(EXAMPLES / "astronaut.jpg", "-c", trained_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and len(record["faces"]) == 1
    face = record["faces"][0]
    x, y, w, h = face["box"]
    assert 150 < x < 200 and 40 < y < 100 and 80 < w < 120  # where the astronaut's face is
    assert set(face["scores"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert abs(sum(face["scores"].values()) - 1) < 1e-2 and face["label"] == max(face["scores"], key=face["scores"].get)


def test_several_faces_in_a_stable_order(trained_checkpoint):
    result = predict(EXAMPLES / "two_faces.jpg", "-c", trained_checkpoint, "--json")
    faces = json.loads(result.stdout)["faces"]
    assert len(faces) == 2 and faces[0]["box"][0] < faces[1]["box"][0]
    largest = json.loads(predict(EXAMPLES / "two_faces.jpg", "-c", trained_checkpoint, "--json", "--faces", "largest").stdout)
    assert len(largest["faces"]) == 1


def test_no_face_and_no_detect(tmp_path, trained_checkpoint):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(blank)
    record = json.loads(predict(blank, "-c", trained_checkpoint, "--json").stdout)
    assert record["status"] == "no_face" and record["faces"] == []
    whole = json.loads(predict(blank, "-c", trained_checkpoint, "--json", "--no-detect").stdout)
    assert whole["status"] == "ok" and whole["faces"][0]["box"] == [0, 0, 400, 300]


def test_small_crops_skip_the_detector(tmp_path, trained_checkpoint):
    crop = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(crop)
    record = json.loads(predict(crop, "-c", trained_checkpoint, "--json").stdout)
    assert record["status"] == "ok" and record["faces"][0]["box"] == [0, 0, 48, 48]


def test_folder_with_a_corrupt_file_goes_on(tmp_path, trained_checkpoint):
    folder = tmp_path / "shots"
    (folder / "nested").mkdir(parents=True)
    for name in ("a.png", "nested/b.jpg"):
        Image.fromarray(np.full((48, 48), 100, np.uint8)).save(folder / name)
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("not an image, not an input")
    result = predict(folder, "-c", trained_checkpoint, "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1  # one input could not be read
    assert [Path(r["path"]).name for r in records] == ["a.png", "c.jpg", "b.jpg"]
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert "corrupt" in records[1]["error"] or "not an image" in records[1]["error"]
    assert "3 photos: 2 with faces (2 faces), 0 without, 1 unreadable" in result.stderr  # the tally, on stderr


def test_files_people_take_for_photos_get_a_line_on_what_to_do(tmp_path, trained_checkpoint, monkeypatch):
    """A camera RAW photo (PIL would read a NEF as a TIFF: its 160x120 preview), a zip and a PDF of photos: each one
    line saying what it is and what to give fer instead; before, the zip of JPEGs was read as a video of them."""
    import zipfile

    photo = Image.open(EXAMPLES / "astronaut.jpg")
    photo.resize((160, 120)).save(tmp_path / "DSC_0001.NEF", format="TIFF")
    with zipfile.ZipFile(tmp_path / "holiday.zip", "w") as archive:  # stored: the JPEGs' bytes as they are
        archive.write(EXAMPLES / "astronaut.jpg", "a.jpg")
        archive.write(EXAMPLES / "two_faces.jpg", "b.jpg")
    photo.save(tmp_path / "album.pdf")
    raws = tmp_path / "card"
    raws.mkdir()
    for name in ("IMG_1.CR2", "IMG_2.CR2", "IMG_3.DNG"):
        (raws / name).write_bytes(b"II*\x00raw")
    expected = {"DSC_0001.NEF": "a camera RAW photo, which fer does not read: use the JPEG the camera saved beside it",
                "holiday.zip": "a zip archive: unzip it and give fer the folder",
                "album.pdf": "a PDF: save its pictures as images",
                "card": "folder holds no images or videos but 3 camera RAW photos (.cr2, .dng), which fer does not read"}
    monkeypatch.chdir(tmp_path)
    for name, message in expected.items():
        result = predict(tmp_path / name, "-c", trained_checkpoint)
        assert result.exit_code == 1 and f"{tmp_path / name}: {message}" in result.stderr, (name, result.output)
    assert not (tmp_path / "runs" / "predict").exists()  # no video run folder: nothing was read as a video


def test_hidden_files_and_folders_in_a_folder_are_left_out(tmp_path, trained_checkpoint):
    """A folder copied from a Mac to a USB drive: ._a.jpg (AppleDouble metadata, not a JPEG) beside a.jpg, and a
    thumbnail cache: only a.jpg (and b.jfif, a JPEG as Windows browsers save it) is read, none is unreadable."""
    folder = tmp_path / "usb"
    (folder / ".thumbnails").mkdir(parents=True)
    Image.fromarray(np.full((48, 48), 100, np.uint8)).save(folder / "a.jpg")
    Image.fromarray(np.full((48, 48), 100, np.uint8)).save(folder / "b.jfif", format="JPEG")
    Image.fromarray(np.full((48, 48), 100, np.uint8)).save(folder / ".thumbnails" / "a.jpg")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    result = predict(folder, "-c", trained_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    assert [Path(json.loads(line)["path"]) for line in result.stdout.splitlines()] == [folder / "a.jpg", folder / "b.jfif"]


def test_a_photo_piped_in_is_read_from_stdin(tmp_path, trained_checkpoint):
    """`curl -s URL | fer predict -`: the piped photo's faces, and its annotated copy named after stdin."""
    from fercli.faces.images import stdin_bytes

    stdin_bytes.cache_clear()  # read once per process: each invocation here is a new "process"
    piped = runner.invoke(app, ["predict", "-", "-c", str(trained_checkpoint), "--json", "-o", str(tmp_path / "out")],
                          input=(EXAMPLES / "two_faces.jpg").read_bytes())
    assert piped.exit_code == 0, piped.output
    [record] = [json.loads(line) for line in piped.stdout.splitlines()]
    assert record["path"] == "-" and len(record["faces"]) == 2 and (tmp_path / "out" / "stdin_fer.jpg").is_file()
    stdin_bytes.cache_clear()
    empty = runner.invoke(app, ["predict", "-", "-c", str(trained_checkpoint)], input=b"")
    assert empty.exit_code == 1 and "-: empty (0 bytes)" in empty.stderr
    stdin_bytes.cache_clear()


def test_csv_has_a_row_per_face_and_per_photo_without_one(tmp_path, trained_checkpoint):
    """--csv: a spreadsheet of a folder's faces; a photo without a face and an unreadable one get a row each; a rerun
    goes on with the file, and --overwrite starts it afresh."""
    import csv
    import shutil

    folder = tmp_path / "party"
    folder.mkdir()
    shutil.copy(EXAMPLES / "two_faces.jpg", folder / "a.jpg")
    Image.fromarray(np.full((300, 400), 128, np.uint8)).save(folder / "b.png")  # a grey wall
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff cut")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_faces import group_photo

    group_photo(folder / "d.jpg", [30, 32, 34], size=(1600, 1200))  # faces under --min-face: counted
    table = tmp_path / "faces.csv"
    result = predict(folder, "-c", trained_checkpoint, "--csv", table)
    assert result.exit_code == 1  # c.jpg could not be read
    rows = list(csv.DictReader(open(table)))
    assert [(Path(r["file"]).name, r["status"], r["face"], r["faces_under_min_face"]) for r in rows] == [
        ("a.jpg", "ok", "1", "0"), ("a.jpg", "ok", "2", "0"), ("b.png", "no_face", "", "0"), ("c.jpg", "error", "", "0"),
        ("d.jpg", "no_face", "", "3")]
    classes = list(rows[0])[11:-3]
    assert sum(float(rows[0][c]) for c in classes) == pytest.approx(1, abs=1e-3) and rows[0]["label"] in classes
    assert int(rows[1]["x"]) > int(rows[0]["x"]) and rows[3]["error"] and rows[0]["frame"] == ""
    # A rerun goes on with the file: what it holds stays, unreadable inputs are tried again, nothing is doubled.
    (folder / "e.jpg").write_bytes((EXAMPLES / "astronaut.jpg").read_bytes())
    again = predict(folder, "-c", trained_checkpoint, "--csv", table, "--json")
    assert again.exit_code == 1 and "holds 3 of these inputs from before" in again.stderr
    assert sorted(Path(json.loads(line)["path"]).name for line in again.stdout.splitlines()) == ["c.jpg", "e.jpg"]
    assert [Path(r["file"]).name for r in csv.DictReader(open(table))] == ["a.jpg", "a.jpg", "b.png", "d.jpg", "c.jpg", "e.jpg"]
    assert predict(folder, "-c", trained_checkpoint, "--csv", table, "--overwrite").exit_code == 1
    assert [Path(r["file"]).name for r in csv.DictReader(open(table))] == ["a.jpg", "a.jpg", "b.png", "c.jpg", "d.jpg", "e.jpg"]
    (tmp_path / "other.csv").write_text("name,score\nx,1\n")
    foreign = predict(folder, "-c", trained_checkpoint, "--csv", tmp_path / "other.csv")
    assert foreign.exit_code == 1 and "is not a table" in foreign.stderr
    assert (tmp_path / "other.csv").read_text() == "name,score\nx,1\n"  # not the user's file: left as it was
    assert predict(folder, "-c", trained_checkpoint, "--csv", tmp_path / "faces.txt").exit_code == 1


def test_json_schema(trained_checkpoint):
    record = json.loads(predict(EXAMPLES / "astronaut.jpg", "-c", trained_checkpoint, "--json").stdout)
    assert set(record) == {"path", "status", "size", "turned", "faces"}
    face = record["faces"][0]
    assert set(face) == {"box", "label", "scores", "detector_score", "landmarks"}
    assert all(isinstance(v, int) for v in face["box"]) and 0.6 <= face["detector_score"] <= 1
    assert len(face["landmarks"]) == 5 and all(len(point) == 2 for point in face["landmarks"])
    haar = json.loads(predict(EXAMPLES / "astronaut.jpg", "-c", trained_checkpoint, "--json", "--detector", "haar").stdout)
    assert haar["faces"][0]["detector_score"] is None and haar["faces"][0]["landmarks"] is None


def test_table_output_and_annotated_save(tmp_path, trained_checkpoint):
    out = tmp_path / "annotated.jpg"
    result = predict(EXAMPLES / "two_faces.jpg", "-c", trained_checkpoint, "--save", out, "--top-k", 3)
    assert result.exit_code == 0, result.output
    assert "#3" in result.stdout and out.is_file()
    assert Image.open(out).size == (1024, 512)
    again = predict(EXAMPLES / "two_faces.jpg", "-c", trained_checkpoint, "--save", out)
    assert again.exit_code == 1 and "--overwrite" in again.stderr


def test_glob_and_missing_inputs(tmp_path, trained_checkpoint):
    result = predict(str(EXAMPLES / "*.jpg"), tmp_path / "missing.jpg", "-c", trained_checkpoint, "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "error"] and result.exit_code == 1


def test_shipped_model_is_found():
    from fercli.model.shipped import default_checkpoint

    assert default_checkpoint(".pt").is_file() and default_checkpoint(".onnx").is_file()


def test_tta_flip_is_the_default_changes_the_scores_not_the_faces_and_tencrop_needs_a_pt(trained_checkpoint):
    def faces(*extra):
        result = predict(EXAMPLES / "two_faces.jpg", "--json", *extra)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["faces"]

    plain, flipped = faces("--tta", "none"), faces("--tta", "flip")  # the shipped ONNX model
    assert faces() == flipped
    assert [f["box"] for f in plain] == [f["box"] for f in flipped] and len(plain) == 2
    assert all(abs(sum(f["scores"].values()) - 1) < 1e-2 for f in flipped)
    assert any(a["scores"] != b["scores"] for a, b in zip(plain, flipped))
    assert len(faces("-c", trained_checkpoint, "--tta", "tencrop")) == 2
    refused = predict(EXAMPLES / "two_faces.jpg", "--tta", "tencrop")
    assert refused.exit_code != 0 and "--tta tencrop needs a .pt checkpoint" in refused.output
    assert "Traceback" not in refused.output


def test_a_results_table_piped_to_a_file_keeps_long_names_whole(tmp_path):
    """Into a file or pipe, Rich would fold a table into 80 columns and cut the photo's name short."""
    import shutil

    photo = tmp_path / ("a_photo_with_a_long_name_from_a_camera_roll_" + "x" * 60 + ".jpg")
    shutil.copy(EXAMPLES / "astronaut.jpg", photo)
    result = predict(photo)
    assert result.exit_code == 0, result.stderr
    assert str(photo) in result.stdout
