"""Photos and videos by address, served from 127.0.0.1 by a small HTTP server the tests start and stop."""

from __future__ import annotations

import functools
import json
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from fercli.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


class QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, "": "video/mp4"}  # "movie" below has no suffix

    def log_message(self, *args) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # fer hangs up on purpose (a video where a photo was wanted, a download over the limit)


@pytest.fixture
def served(tmp_path):
    """A folder served at http://127.0.0.1:PORT/, holding the example photos and a 10-frame video (also without its
    suffix, as "movie", sent as video/mp4) and an HLS playlist of two segments."""
    root = tmp_path / "www"
    root.mkdir()
    for name in ("astronaut.jpg", "two_faces.jpg"):
        shutil.copy(EXAMPLES / name, root / name)
    photo = cv2.imread(str(EXAMPLES / "astronaut.jpg"))
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for _ in range(10):
        writer.write(photo)
    writer.release()
    shutil.copy(root / "clip.mp4", root / "movie")
    writer = cv2.VideoWriter(str(root / "part.ts"), cv2.VideoWriter_fourcc(*"MPEG"), 10, (512, 512))
    for _ in range(5):
        writer.write(photo)
    writer.release()
    (root / "live.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                                    "#EXTINF:0.5,\npart.ts\n#EXTINF:0.5,\npart.ts\n#EXT-X-ENDLIST\n")
    server = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def predict(*args):
    return runner.invoke(app, ["predict", *[str(a) for a in args]])


def test_photo_by_address_is_the_photo(served, tmp_path):
    url = f"{served}/astronaut.jpg?size=large&v=2"  # a query's "?" is no glob
    result = predict(url, "--json", "--save", tmp_path / "out")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    local = json.loads(predict(EXAMPLES / "astronaut.jpg", "--json").stdout)
    assert record["path"] == url and record["faces"] == local["faces"] and record["faces"][0]["label"] == "happy"
    drawn = cv2.imread(str(tmp_path / "out" / "astronaut_fer.jpg"))
    assert drawn is not None and drawn.shape == (512, 512, 3)


def test_python_api_takes_an_address(served):
    from fercli import FaceAnalyzer

    record = FaceAnalyzer().predict(f"{served}/two_faces.jpg")
    assert record["status"] == "ok" and [f["label"] for f in record["faces"]] == ["happy", "happy"]
    missing = FaceAnalyzer().predict(f"{served}/gone.jpg")
    assert missing["status"] == "error" and "404" in missing["error"]


def test_video_and_hls_playlist_by_address(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = predict(f"{served}/clip.mp4", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(10)) and all(r["faces"][0]["face_id"] == 1 for r in records)
    assert json.loads(Path("runs/predict/clip/summary.json").read_text())["frames_decoded"] == 10
    playlist = predict(f"{served}/live.m3u8", "--json")
    assert playlist.exit_code == 0, playlist.output
    times = [json.loads(line)["time_s"] for line in playlist.stdout.splitlines()]
    assert len(times) == 10 and times == sorted(times)  # both segments, in order, though each starts its clock at 0


def test_address_failures_are_one_line_each(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr("fercli.urls.MAX_DOWNLOAD_BYTES", 50_000)  # two_faces.jpg is larger
    expected = {
        f"{served}/gone.jpg": "the server answered 404",
        f"http://127.0.0.1:{closed}/photo.jpg": "cannot reach it",
        f"{served}/movie": "the server sends a video (video/mp4) at an address without a video suffix",
        f"{served}/two_faces.jpg": "over 0 MB, too large for a photo",
        f"rtsp://127.0.0.1:{closed}/live": "cannot be opened as a video stream",
    }
    for url, message in expected.items():
        result = predict(url)
        assert result.exit_code == 1 and "Traceback" not in result.output, (url, result.output)
        assert f"{url}: {message}" in result.stderr, (url, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2  # the line, and the count for photos; no FFmpeg lines
    as_source = predict("--source", f"rtsp://127.0.0.1:{closed}/live")  # where people put a camera's address
    assert as_source.exit_code == 1 and "cannot be opened as a video stream" in as_source.stderr
