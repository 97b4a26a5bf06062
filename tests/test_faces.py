"""The face pipeline: YuNet, alignment, photos as cameras write them, and the Python API."""

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fercli import FaceAnalyzer
from fercli.faces.align import LOW_CONTRAST, YUNET_FRAMING, Square, crop_square, even_exposure, eye_angle, face_square
from fercli.cli import app
from fercli.faces.detect import Detection
from fercli.errors import InputError
from fercli.faces.images import PANORAMA_STRETCH, longest_side_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ASTRONAUT_BOX = (178, 63, 90, 114)  # YuNet's box on examples/astronaut.jpg (x, y, w, h)
runner = CliRunner()


def astronaut() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))


def near(box, expected, tolerance: float) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected))


def test_python_api_on_a_path_and_on_an_array():
    analyzer = FaceAnalyzer()  # the shipped model and YuNet
    from_path = analyzer.predict(EXAMPLES / "astronaut.jpg")
    assert from_path["status"] == "ok" and len(from_path["faces"]) == 1
    face = from_path["faces"][0]
    assert near(face["box"], ASTRONAUT_BOX, 4) and face["label"] == "happy"
    from_array = analyzer.predict(astronaut())
    assert from_array["path"] == "<array>" and from_array["faces"][0]["box"] == face["box"]
    assert from_array["faces"][0]["scores"] == pytest.approx(face["scores"], abs=1e-3)
    from_bgr = analyzer.predict(np.ascontiguousarray(astronaut()[:, :, ::-1]), bgr=True)
    assert from_bgr["faces"][0]["box"] == face["box"]


def test_python_api_with_the_shipped_model_imports_no_torch():
    code = ("import sys\nfrom fercli import FaceAnalyzer\nr = FaceAnalyzer().predict('examples/astronaut.jpg')\n"
            "print(r['status'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=EXAMPLES.parent).stdout.split()
    assert out == ["ok", "False"]


def test_python_api_rejects_bad_arrays_in_one_line():
    analyzer = FaceAnalyzer(detector=None)
    with pytest.raises(InputError, match="uint8"):
        analyzer.predict(np.zeros((50, 50), np.float32))
    with pytest.raises(InputError, match="HxW"):
        analyzer.predict(np.zeros((5, 50, 50, 3), np.uint8))


def test_example_photos_give_their_faces():
    result = runner.invoke(app, ["predict", str(EXAMPLES / "two_faces.jpg"), "--json"])
    faces = json.loads(result.stdout)["faces"]
    assert result.exit_code == 0 and len(faces) == 2
    assert faces[0]["box"][0] < 300 < 700 < faces[1]["box"][0]  # one face in each half, left to right
    assert all(f["label"] == "happy" and f["detector_score"] >= 0.6 for f in faces)


def test_face_free_photos_get_no_phantom_faces():
    """scikit-learn's sample photos (a temple, a flower) hold no faces: YuNet must not invent one."""
    import sklearn

    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    result = runner.invoke(app, ["predict", str(folder / "china.jpg"), str(folder / "flower.jpg"), "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["no_face", "no_face"]
    assert not any("faces_under_min_face" in r for r in records)  # nor smaller ones when searched for below --min-face
    analyzer = FaceAnalyzer()  # nor in them taken in the dark, searched again brightened
    for name in ("china.jpg", "flower.jpg"):
        photo = np.asarray(Image.open(folder / name).convert("RGB")).astype(np.float64)
        for exposure in (0.08, 0.04):
            assert analyzer.predict((photo * exposure).round().astype(np.uint8))["faces"] == [], (name, exposure)


def test_exif_rotated_photo_is_found_upright(tmp_path):
    """Phones store pixels sideways and an EXIF orientation tag; the face must be found, in upright coordinates."""
    sideways = Image.open(EXAMPLES / "astronaut.jpg").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    sideways.save(path, exif=exif.tobytes(), quality=95)
    record = FaceAnalyzer().predict(path)
    assert record["status"] == "ok" and len(record["faces"]) == 1
    assert near(record["faces"][0]["box"], ASTRONAUT_BOX, 6)


def test_iphone_heic_photo_is_read_upright(tmp_path):
    """iPhones save HEIC, pixels sideways and the turn inside the file: read with pillow-heif (fercli[heic]), the
    face is where it is in the upright photo."""
    pytest.importorskip("pillow_heif", reason='HEIC needs pillow-heif: pip install "fercli[heic]"')
    path = tmp_path / "IMG_0001.HEIC"
    # Written in another process, so that reading it here relies on fer registering the plugin, not on this test.
    subprocess.run([sys.executable, "-c", f"""
import pillow_heif
from PIL import Image
pillow_heif.register_heif_opener()
sideways = Image.open({str(EXAMPLES / "astronaut.jpg")!r}).transpose(Image.Transpose.ROTATE_90)
exif = Image.Exif()
exif[0x0112] = 6  # pillow-heif stores it as HEIF's own rotation, as iPhones do
sideways.save({str(path)!r}, format="HEIF", exif=exif.tobytes(), quality=90)
"""], check=True)
    assert path.read_bytes()[4:12] == b"ftypheic"
    record = FaceAnalyzer().predict(path)
    assert record["status"] == "ok" and record["size"] == [512, 512] and len(record["faces"]) == 1
    assert near(record["faces"][0]["box"], ASTRONAUT_BOX, 6) and record["turned"] == 0


def test_heic_without_its_plugin_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "IMG_0002.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif now raises ImportError
    result = runner.invoke(app, ["predict", str(path)])
    assert result.exit_code != 0
    assert 'IMG_0002.HEIC: a HEIC/HEIF photo' in result.output and 'pip install "fercli[heic]"' in result.output
    assert "Traceback" not in result.output


def test_avif_photo_is_read(tmp_path):
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow was built without AVIF")
    path = tmp_path / "photo.avif"
    Image.open(EXAMPLES / "astronaut.jpg").save(path, quality=90)
    result = runner.invoke(app, ["predict", str(tmp_path), "--json"])  # a folder: .avif is listed as a photo
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and near(record["faces"][0]["box"], ASTRONAUT_BOX, 6)


def test_a_panorama_keeps_its_faces_large_enough_to_find(tmp_path):
    """Eight copies of two_faces.jpg side by side (8192x512): shrunk to 640 px long, each face would be 9 px high
    and none was found; the short side now keeps half the detector's size, and all 16 faces are found."""
    photo = np.asarray(Image.open(EXAMPLES / "two_faces.jpg").convert("RGB"))
    path = tmp_path / "panorama.jpg"
    Image.fromarray(np.concatenate([photo] * 8, axis=1)).save(path, quality=92)
    record = FaceAnalyzer().predict(path)  # decoded long enough, then shrunk for the detector, both by the same rule
    boxes = sorted(face["box"] for face in record["faces"])
    assert len(boxes) == 16 and all(face["label"] == "happy" for face in record["faces"])
    single = sorted(face["box"] for face in FaceAnalyzer().predict(photo)["faces"])
    for i, (x, y, w, h) in enumerate(boxes):  # each where it is in its copy
        assert near((x - 1024 * (i // 2), y, w, h), single[i % 2], 8)


def group_photo(path: Path, face_sides: list[int], size=(4000, 3000)) -> list[tuple[float, float]]:
    """The astronaut's head and shoulders, pasted so that her face is each of ``face_sides`` pixels high, in a row
    across a grey 12-megapixel photo; returns the face centres."""
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    x, y, w, h = ASTRONAUT_BOX
    head = photo.crop((x - w, y - h // 2, x + 2 * w, y + 2 * h))  # 3 face widths, 2.5 face heights
    canvas, centres, left = Image.new("RGB", size, (110, 110, 110)), [], 40
    for side in face_sides:
        scale = side / h
        pasted = head.resize((round(head.width * scale), round(head.height * scale)), Image.Resampling.LANCZOS)
        top = size[1] // 2 - pasted.height // 2
        canvas.paste(pasted, (left, top))
        centres.append((left + (w + w / 2) * scale, top + (h / 2 + h / 2) * scale))
        left += pasted.width + 20
    canvas.save(path, quality=90)
    return centres


def test_small_faces_of_a_group_photo_are_found_and_read_sharp(tmp_path):
    """Twelve faces 50-62 px high in a 4000x3000 photo: 8-10 px in the detector's usual 640-px copy, where YuNet finds
    none. The closer look at 1280 px finds them, and their crops come from a sharper decoding (from the 1280-px one
    they were 16-20 px and read as fear, sad or neutral)."""
    centres = group_photo(tmp_path / "group.jpg", [50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 62])
    found = FaceAnalyzer().predict(tmp_path / "group.jpg")["faces"]
    held = [any(fx <= cx <= fx + fw and fy <= cy <= fy + fh for fx, fy, fw, fh in (f["box"] for f in found))
            for cx, cy in centres]
    assert sum(held) >= 11 and len(found) == sum(held)  # no box elsewhere
    assert all(f["label"] == "happy" and f["scores"]["happy"] > 0.7 for f in found)
    usual = FaceAnalyzer(small_faces=False).predict(tmp_path / "group.jpg")["faces"]
    assert len(usual) <= 2


def test_a_photo_whose_faces_are_all_under_min_face_says_so_and_how_to_read_them(tmp_path):
    """A group photo shared at web size: faces 30-36 px, under --min-face 40. Before: "no face found (small faces:
    --detect-size 1280 ...)", a hint that found nothing either. Now the faces the size rule dropped are counted and
    the line names the --min-face that reads them, which then does."""
    group_photo(tmp_path / "web.jpg", [30, 32, 34, 36], size=(1600, 1200))
    record = FaceAnalyzer().predict(tmp_path / "web.jpg")
    assert record["status"] == "no_face" and record["faces"] == [] and record["faces_under_min_face"] == 4
    result = runner.invoke(app, ["predict", str(tmp_path / "web.jpg")])
    line = result.stdout.strip()
    assert result.exit_code == 0 and line.startswith(f"{tmp_path / 'web.jpg'}: no face found, but 4 smaller than "
                                                     "--min-face ("), line
    smallest = int(line.split("--min-face ")[2].split()[0])
    assert 24 <= smallest < 40  # SMALLEST_FACE <= it < MIN_FACE
    read = FaceAnalyzer(min_face=smallest).predict(tmp_path / "web.jpg")
    assert len(read["faces"]) == 4 and all(f["label"] == "happy" for f in read["faces"]), read["faces"]


def test_faces_under_min_face_beside_larger_ones_are_counted_not_drawn(tmp_path):
    """Three faces of 35-50 px are read; three of 26-30 px, under --min-face, are named in one line on stderr (the
    table stays the faces read) and counted in the JSON; --faces largest asked for one face: no count."""
    group_photo(tmp_path / "mixed.jpg", [30, 32, 34, 52, 56, 60], size=(1600, 1200))
    record = FaceAnalyzer().predict(tmp_path / "mixed.jpg")
    assert len(record["faces"]) == 3 and record["faces_under_min_face"] == 3
    result = runner.invoke(app, ["predict", str(tmp_path / "mixed.jpg")])
    assert result.exit_code == 0 and result.stdout.count("happy") == 3
    assert f"{tmp_path / 'mixed.jpg'}: also 3 smaller than --min-face (" in result.stderr
    assert "faces_under_min_face" not in FaceAnalyzer(faces="largest").predict(tmp_path / "mixed.jpg")
    assert "faces_under_min_face" not in FaceAnalyzer().predict(EXAMPLES / "two_faces.jpg")  # nothing left out


def test_largest_face_only_is_one_face_with_the_closer_look_too(tmp_path):
    """A 380-px face (60 px in the usual copy: found there) among small ones (found by the closer look):
    --faces largest keeps that one face, not the largest of each look."""
    group_photo(tmp_path / "group.jpg", [380, 52, 54, 56, 58, 60])
    assert len(FaceAnalyzer().predict(tmp_path / "group.jpg")["faces"]) == 6
    (largest,) = FaceAnalyzer(faces="largest").predict(tmp_path / "group.jpg")["faces"]
    assert largest["box"][3] > 300


def test_longest_side_stretches_for_panoramas_only():
    assert longest_side_for(4000, 3000, 640) == longest_side_for(2000, 1000, 640) == 640
    assert longest_side_for(4000, 1000, 640) == 1280 and longest_side_for(1000, 4000, 640) == 1280  # short side 320
    assert longest_side_for(100_000, 1000, 640) == 640 * PANORAMA_STRETCH


def test_turned_back_undoes_each_quarter_turn():
    """A box and a point found in np.rot90(image, k) land on the same pixels of the image itself."""
    image = np.zeros((30, 50), np.uint8)
    image[5:9, 10:20] = 1  # the box (10, 5, 10, 4); its top-left pixel's centre is (10.5, 5.5)
    for turns in range(4):
        turned = np.rot90(image, turns)
        ys, xs = np.nonzero(turned)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        found = Detection((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), 0.9, ((x0 + 0.5, y0 + 0.5),))
        back = found.turned_back(turns, (50, 30))
        assert back.box == pytest.approx((10, 5, 10, 4))
        x, y = back.landmarks[0]
        assert image[int(y), int(x)] == 1


# The astronaut's box in the photo as stored when the upright photo was turned clockwise by turns x 90 degrees.
STORED_TURNED_BOXES = {1: (335, 178, 114, 90), 2: (244, 335, 90, 114), 3: (63, 244, 114, 90)}


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_photo_stored_turned_without_exif_is_read_upright(turns):
    """Sideways or upside down with no EXIF tag (stripped by many apps): YuNet still finds the face, scoring lower,
    and its crop used to be read as it lay (upside down the astronaut's smile was "sad 61%"). Now the faces are
    read in the turn that makes them upright and reported in the stored photo's pixels."""
    stored = np.ascontiguousarray(np.rot90(astronaut(), -turns))
    analyzer = FaceAnalyzer()
    record = analyzer.predict(stored)
    assert record["turned"] == 90 * turns and len(record["faces"]) == 1
    face = record["faces"][0]
    assert near(face["box"], STORED_TURNED_BOXES[turns], 6) and face["label"] == "happy"
    right_eye, left_eye = np.array(face["landmarks"][0]), np.array(face["landmarks"][1])
    # The subject's eyes keep their names: right to left eye points along the upright photo's x axis, turned.
    expected = {1: (0, 1), 2: (-1, 0), 3: (0, -1)}[turns]  # a clockwise quarter turn takes (1, 0) to (0, 1)
    assert np.dot((left_eye - right_eye) / np.linalg.norm(left_eye - right_eye), expected) > 0.95
    assert analyzer.predict(stored, orient=False)["turned"] == 0  # as before: upright only


def test_big_photo_boxes_are_in_full_resolution_pixels(tmp_path):
    """A 12-megapixel JPEG is decoded at a fraction of its size; boxes still come back in its own pixels."""
    path = tmp_path / "big.jpg"
    Image.open(EXAMPLES / "astronaut.jpg").resize((4000, 4000), Image.Resampling.BICUBIC).save(path, quality=90)
    record = FaceAnalyzer().predict(path)
    scale = 4000 / 512
    assert record["size"] == [4000, 4000] and len(record["faces"]) == 1
    assert near(record["faces"][0]["box"], [v * scale for v in ASTRONAUT_BOX], 6 * scale)


def dark_spots(image: np.ndarray) -> list[tuple[float, float]]:
    """Centroids of the dark blobs in ``image``, left to right."""
    count, _labels, _stats, centres = cv2.connectedComponentsWithStats((image < 60).astype(np.uint8))
    return sorted((float(x), float(y)) for x, y in centres[1:count])


def test_alignment_levels_the_eyes_of_a_turned_face():
    """Two dark "eyes" 60 px apart on a face turned by 25 degrees: the aligned crop has them level and where
    the framing puts eyes; without alignment they stay tilted."""
    photo = np.full((400, 400), 200, np.uint8)
    centre, half_gap, tilt = np.array([200.0, 180.0]), 30.0, math.radians(25)
    along = np.array([math.cos(tilt), math.sin(tilt)])
    right_eye, left_eye = centre - half_gap * along, centre + half_gap * along
    for eye in (right_eye, left_eye):
        cv2.circle(photo, (round(eye[0]), round(eye[1])), 6, 0, -1)
    detection = Detection((150.0, 150.0, 100.0, 120.0), 0.9, (tuple(right_eye), tuple(left_eye), (200.0, 210.0),
                                                              (185.0, 240.0), (215.0, 240.0)))
    assert math.degrees(eye_angle(detection)) == pytest.approx(25)
    aligned = dark_spots(crop_square(photo, face_square(detection, YUNET_FRAMING, align=True), 120))
    unaligned = dark_spots(crop_square(photo, face_square(detection, YUNET_FRAMING, align=False), 120))
    (x0, y0), (x1, y1) = aligned
    assert abs(y1 - y0) < 1 and (x1 - x0) == pytest.approx(60 * 120 / (YUNET_FRAMING.scale * 110), rel=0.03)
    (u0, v0), (u1, v1) = unaligned
    assert math.degrees(math.atan2(v1 - v0, u1 - u0)) == pytest.approx(25, abs=1)


def test_a_dark_or_washed_out_crop_is_evened_and_a_usual_one_left_as_it_is():
    face = cv2.resize(np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("L")), (48, 48))
    lo, hi = np.percentile(face, (1, 99))
    assert hi - lo >= LOW_CONTRAST and even_exposure(face) is face  # the usual contrast: untouched
    for dim in (face * 0.08, face * 0.4 + 150):  # an underexposed photo's face, a washed-out one's
        evened = even_exposure(dim.round().astype(np.uint8))
        lo, hi = np.percentile(evened, (1, 99))
        assert evened.dtype == np.uint8 and evened.shape == (48, 48) and hi - lo > 200
    assert even_exposure(np.full((48, 48), 7, np.uint8)).shape == (48, 48)  # no contrast at all: no division by 0


def test_faces_in_an_underexposed_photo_are_found_and_read_as_in_a_well_exposed_one():
    """two_faces.jpg at 8% of its exposure: both faces happy as in the photo itself (before the crops were evened,
    both read "angry" at 62-68%); at 4%, where YuNet finds one of them, the brightened search finds the other
    (benchmarks/exposure.py)."""
    photo = np.asarray(Image.open(EXAMPLES / "two_faces.jpg").convert("RGB")).astype(np.float64)
    for exposure in (0.08, 0.04):
        dark = (photo * exposure).round().astype(np.uint8)
        assert [f["label"] for f in FaceAnalyzer().predict(dark)["faces"]] == ["happy", "happy"], exposure


def test_crop_square_takes_exactly_the_square():
    """A square of the photo maps onto the crop pixel for pixel (no shift, no flip), edges repeated outside."""
    photo = np.arange(100 * 120, dtype=np.int64).reshape(100, 120).astype(np.uint8)
    crop = crop_square(photo, Square(cx=30, cy=40, side=20, angle=0.0), 20)
    np.testing.assert_array_equal(crop, photo[30:50, 20:40])
    corner = crop_square(photo, Square(cx=0, cy=0, side=20, angle=0.0), 20)
    assert (corner[:10, :10] == photo[0, 0]).all()


@pytest.mark.parametrize("options, fragment", [
    (["--detect-size", "10"], "--detect-size 10"),
    (["--min-score", "1.5"], "--min-score 1.5"),
])
def test_bad_detector_options_are_one_line(options, fragment):
    result = runner.invoke(app, ["predict", str(EXAMPLES / "astronaut.jpg"), *options])
    assert result.exit_code == 1 and fragment in result.stderr and "Traceback" not in result.output


def test_unknown_detector_is_refused_with_the_choices():
    result = runner.invoke(app, ["predict", str(EXAMPLES / "astronaut.jpg"), "--detector", "mtcnn"])
    assert result.exit_code == 2 and "yunet" in result.output and "haar" in result.output
