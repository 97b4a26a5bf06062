"""Untrusted image bytes: refused before they are decoded when they declare too much, whatever the entry point."""

import errno
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fercli.errors import InputError
from fercli.faces.images import MAX_DECLARED_PIXELS, read_photo, read_photo_bytes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def declaring(size: tuple[int, int], *, progressive: bool) -> bytes:
    """A small JPEG whose frame header declares ``size`` (width, height): a decompression bomb of a few KB."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buffer, "JPEG", progressive=progressive, quality=80)
    data = bytearray(buffer.getvalue())
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    at = data.index(marker)
    data[at + 5 : at + 9] = struct.pack(">HH", size[1], size[0])  # SOF: length, precision, then height, width
    return bytes(data)


def icon_holding(side: int) -> bytes:
    """An ICO whose one picture is a PNG of side x side: PIL decodes it while opening the file."""
    png = io.BytesIO()
    Image.new("L", (side, side)).save(png, "PNG")
    png = png.getvalue()
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


def measured(code: str) -> dict:
    """Run ``code`` in a fresh interpreter that defines ``data`` and reports the time and peak memory it took."""
    script = ("import json, resource, sys, time\nfrom fercli.faces.images import read_photo_bytes\n"
              "data = sys.stdin.buffer.read()\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "start = time.perf_counter()\n" + code +
              "\nprint(json.dumps({'seconds': time.perf_counter() - start, 'error': error,"
              " 'grew_mb': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))")
    return script


def run_measured(data: bytes) -> dict:
    code = ("try:\n    read_photo_bytes(data, name='bomb.jpg')\n    error = ''\n"
            "except Exception as exc:\n    error = f'{type(exc).__name__}: {exc}'")
    done = subprocess.run([sys.executable, "-c", measured(code)], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_a_progressive_jpeg_declaring_28000_squared_is_refused_at_once_in_little_memory():
    result = run_measured(declaring((28000, 28000), progressive=True))
    assert result["error"].startswith("InputError: bomb.jpg: image too large (28000x28000 as a progressive JPEG")
    assert result["seconds"] < 1 and result["grew_mb"] < 50


def test_an_icon_holding_a_huge_png_is_never_opened():
    result = run_measured(icon_holding(12000))
    assert "not an image fer reads" in result["error"] and result["grew_mb"] < 50 and result["seconds"] < 1


def test_formats_outside_the_list_are_refused_in_one_line():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(InputError, match="not an image fer reads .* JPEG, PNG, WebP"):
        read_photo_bytes(eps, name="drawing.eps")


def test_pillows_own_check_stands_at_fers_budget():
    assert Image.MAX_IMAGE_PIXELS == MAX_DECLARED_PIXELS
    with pytest.raises(InputError, match="image too large"):  # a baseline JPEG past even what draft could shrink
        read_photo_bytes(declaring((65000, 65000), progressive=False), name="huge.jpg")


def test_a_photo_of_the_usual_kind_still_reads():
    photo = read_photo(EXAMPLES / "astronaut.jpg", gray=False)
    assert photo.size == (512, 512) and photo.pixels.shape == (512, 512, 3)


def test_sixteen_bit_images_are_stretched_to_eight_bits_band_by_band(tmp_path):
    ramp = (np.arange(600 * 300, dtype=np.int64).reshape(600, 300) * 65535 // (600 * 300 - 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    pixels = read_photo(tmp_path / "deep.png", gray=True).pixels
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    assert abs(int(pixels[300, 150]) - 128) <= 1  # the middle of the ramp stays the middle


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_a_photo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "fercli", "predict", str(fifo)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_a_bomb_through_the_command_line_and_the_api_is_one_line(tmp_path):
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(declaring((28000, 28000), progressive=True))
    done = subprocess.run([sys.executable, "-m", "fercli", "predict", str(bomb)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "image too large" in done.stderr and "Traceback" not in done.stderr
    from fastapi.testclient import TestClient

    from fercli.faces.analyzer import FaceAnalyzer
    from fercli.faces.serve import create_app

    client = TestClient(create_app(FaceAnalyzer()))
    answer = client.post("/v1/predict", content=bomb.read_bytes())
    assert answer.status_code == 400 and "image too large" in answer.json()["error"]


def test_torch_saving_onto_a_full_disk_is_an_os_error_of_the_file_asked_for(tmp_path, monkeypatch):
    from fercli import runs

    def full(_tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4608 vs 4502")

    monkeypatch.setattr(runs, "disk_is_full", lambda _folder: True)
    with pytest.raises(OSError) as caught:
        runs.write_atomic(tmp_path / "best.pt", full)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []  # no temporary left behind
    with pytest.raises(RuntimeError, match="something else"):  # other errors pass unchanged
        runs.write_atomic(tmp_path / "x.pt", lambda _tmp: (_ for _ in ()).throw(RuntimeError("something else")))


@pytest.mark.parametrize("shape", [(40000, 16), (16, 40000)])
def test_a_strip_a_few_pixels_high_gets_an_answer_not_a_fault(shape):
    """YuNet answered NaN boxes for such strips; the crop then failed with a ValueError (a 500 from fer serve)."""
    from fercli.faces.analyzer import FaceAnalyzer

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buffer, "PNG")
    assert FaceAnalyzer().predict(buffer.getvalue(), name="strip.png")["status"] == "no_face"
