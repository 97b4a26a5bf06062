"""Photos and videos by address, served from 127.0.0.1 by a small HTTP server the tests start and stop."""

from __future__ import annotations

import functools
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from fercli.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


class QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, "": "video/mp4"}  # "movie" below has no suffix

    def do_GET(self) -> None:
        if self.path == "/camera":
            self.send_camera()
        else:
            super().do_GET()

    def send_camera(self) -> None:
        """What an IP camera or a phone's webcam app serves: Motion JPEG, one JPEG after another as fast as they come
        (here all at once, faster than fer analyses them), at an address without a suffix. With ``hold_after`` set,
        the stream stops after that many frames until the test releases it (at most HOLD_S seconds); with
        ``frame_gap_s`` set, frames come that many seconds apart, as a camera sends them."""
        server = self.server
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        photo = cv2.imread(str(EXAMPLES / "astronaut.jpg"))
        for i in range(server.frames):
            time.sleep(server.frame_gap_s)
            if i == server.hold_after:
                self.wfile.flush()
                server.held_too_long = not server.released.wait(timeout=HOLD_S)
            jpeg = cv2.imencode(".jpg", np.roll(photo, i % 8, axis=1))[1].tobytes()
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))

    def log_message(self, *args) -> None:
        pass


CAMERA_FRAMES = 100
HOLD_S = 10.0  # under FFmpeg's 20 s read timeout, which would otherwise end the stream and release the results


class QuietServer(ThreadingHTTPServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frames, self.frame_gap_s = CAMERA_FRAMES, 0.0
        self.hold_after: int | None = None
        self.released = threading.Event()
        self.held_too_long = False

    def handle_error(self, request, client_address) -> None:
        pass  # fer hangs up on purpose (a video where a photo was wanted, a download over the limit)


@pytest.fixture
def server(tmp_path):
    """A folder served at http://127.0.0.1:PORT/, holding the example photos and a 10-frame video (also without its
    suffix, as "movie", sent as video/mp4), an HLS playlist of two segments, a web page (watch.html) and a camera's stream at /camera."""
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
    (root / "watch.html").write_text("<html><body><img src='astronaut.jpg'></body></html>")
    writer = cv2.VideoWriter(str(root / "part.ts"), cv2.VideoWriter_fourcc(*"MPEG"), 10, (512, 512))
    for _ in range(5):
        writer.write(photo)
    writer.release()
    (root / "live.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                                    "#EXTINF:0.5,\npart.ts\n#EXTINF:0.5,\npart.ts\n#EXT-X-ENDLIST\n")
    server = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


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
    video = FaceAnalyzer().predict(f"{served}/movie")  # it answers about one photo
    assert video["status"] == "error" and "the server sends a video (video/mp4)" in video["error"]
    camera = FaceAnalyzer().predict(f"{served}/camera")  # at once, not when 100 MB have come
    assert camera["status"] == "error" and "a live MJPEG stream (a camera), not a photo" in camera["error"]


def test_video_and_hls_playlist_by_address(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = predict(f"{served}/clip.mp4", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(10)) and all(r["faces"][0]["face_id"] == 1 for r in records)
    assert json.loads(Path("runs/predict/clip/summary.json").read_text())["frames_decoded"] == 10
    unnamed = predict(f"{served}/movie", "--json")  # no suffix: the server's video/mp4 says what it is
    assert unnamed.exit_code == 0, unnamed.output
    assert [json.loads(line)["frame"] for line in unnamed.stdout.splitlines()] == list(range(10))
    playlist = predict(f"{served}/live.m3u8", "--json")
    assert playlist.exit_code == 0, playlist.output
    times = [json.loads(line)["time_s"] for line in playlist.stdout.splitlines()]
    assert len(times) == 10 and times == sorted(times)  # both segments, in order, though each starts its clock at 0


def test_address_failures_are_one_line_each(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr("fercli.faces.urls.MAX_DOWNLOAD_BYTES", 50_000)  # two_faces.jpg is larger
    expected = {
        f"{served}/gone.jpg": "the server answered 404",
        f"http://127.0.0.1:{closed}/photo.jpg": "cannot reach it",
        f"{served}/two_faces.jpg": "over 0 MB, too large for a photo",
        f"{served}/watch.html?v=1": "a web page, not a photo or a video; open it, right-click the photo",
        f"rtsp://127.0.0.1:{closed}/live": "cannot be opened as a video stream",
    }
    for url, message in expected.items():
        result = predict(url)
        assert result.exit_code == 1 and "Traceback" not in result.output, (url, result.output)
        assert f"{url}: {message}" in result.stderr, (url, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2  # the line, and the count for photos; no FFmpeg lines
    as_source = predict("--source", f"rtsp://127.0.0.1:{closed}/live")  # where people put a camera's address
    assert as_source.exit_code == 1 and "cannot be opened as a video stream" in as_source.stderr


def test_camera_stream_by_address_analyses_the_newest_frames(served, tmp_path, monkeypatch):
    """An IP camera's MJPEG stream is live: frames stamped by the clock, and when they come faster than fer analyses
    them, the older ones waiting are skipped, not queued, so the results stay about now and the last frame is seen."""
    monkeypatch.chdir(tmp_path)
    result = predict(f"{served}/camera", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    frames = [r["frame"] for r in records]
    assert frames == sorted(frames) and len(frames) < CAMERA_FRAMES and frames[-1] == CAMERA_FRAMES - 1
    assert all([f["face_id"] for f in r["faces"]] == [1] for r in records)
    # By the clock, all 100 frames came in well under the 4 s that FFmpeg's assumed 25 frames/s would stamp them.
    assert records[-1]["time_s"] < 3.0
    summary = json.loads(Path("runs/predict/camera/summary.json").read_text())
    assert summary["frames_decoded"] == CAMERA_FRAMES and summary["frames_analysed"] == len(records)
    assert "the stream ended after frame 100" in result.stderr  # a camera ends only by Ctrl-C, unless it is lost


def test_camera_results_come_as_the_frames_come(server, served, tmp_path):
    """A live source's results are written frame by frame, not held for a batch nor in a pipe's buffer: the camera
    stops after 3 frames until the first JSON line has reached this test."""
    server.hold_after = 3
    proc = subprocess.Popen([sys.executable, "-m", "fercli", "predict", f"{served}/camera", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    server.released.set()
    rest, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert json.loads(first)["frame"] < 3 and not server.held_too_long
    assert json.loads(rest.splitlines()[-1])["frame"] == CAMERA_FRAMES - 1


def test_a_camera_recorded_to_a_file_plays_in_real_time(server, served, tmp_path, monkeypatch):
    """Frames 0.1 s apart from a camera FFmpeg takes for 25 frames/s: the annotated video holds each frame as long as
    it was shown (repeated until the next came), so it lasts as long as the recording (before: 20 frames, 0.8 s)."""
    monkeypatch.chdir(tmp_path)
    server.frames, server.frame_gap_s = 20, 0.1
    result = predict(f"{served}/camera", "--json", "-o", tmp_path / "me.mp4")
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["frame"] == 19 and last["time_s"] > 1.5
    recorded = cv2.VideoCapture(str(tmp_path / "me.mp4"))
    assert recorded.get(cv2.CAP_PROP_FPS) == pytest.approx(25)
    # One frame each 1/25 s up to the last one's time (printed to the millisecond: a rounding either way).
    assert abs(int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) - (round(last["time_s"] * 25) + 1)) <= 1
    summary = json.loads(Path("runs/predict/camera/summary.json").read_text())
    assert summary["duration_s"] == pytest.approx(last["time_s"] + 1 / 25, abs=1e-3)  # by the clock, not 20 / 25 s


def test_ctrl_c_ends_a_camera_normally_with_every_file_complete(server, served, tmp_path):
    """A live stream has no end but Ctrl-C: exit 0 (not 130, as for a file cut short), the summary written."""
    server.frames, server.frame_gap_s = 2000, 0.04  # 80 s if nothing stopped it
    proc = subprocess.Popen([sys.executable, "-m", "fercli", "predict", f"{served}/camera", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    summary = json.loads((tmp_path / "runs" / "predict" / "camera" / "summary.json").read_text())
    assert summary["stopped"].startswith("interrupted") and summary["frames_analysed"] >= 1 and first["faces"]
    assert (tmp_path / "runs" / "predict" / "camera" / "timeline.png").is_file()


def test_a_camera_in_a_terminal_shows_the_expression_now(server, served, tmp_path):
    """`fer predict http://camera/video` in a terminal: the progress line says what the latest frame shows."""
    import os
    import pty

    server.frames, server.frame_gap_s = 30, 0.05
    terminal, tty = pty.openpty()
    drawn = bytearray()

    def drain() -> None:  # what the bar draws on the terminal
        try:
            while chunk := os.read(terminal, 4096):
                drawn.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        run = subprocess.run([sys.executable, "-m", "fercli", "predict", f"{served}/camera"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=tty, stdin=subprocess.DEVNULL, timeout=120,
                             env={**os.environ, "TERM": "xterm", "COLUMNS": "200"})
    finally:
        os.close(tty)
        reader.join(timeout=5)
        os.close(terminal)
    assert run.returncode == 0
    assert b"#1 happy" in drawn, bytes(drawn[-500:])
