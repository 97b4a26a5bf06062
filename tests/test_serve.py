"""fer serve's HTTP API through FastAPI's TestClient: answers, limits, and bad requests that leave it serving."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.serve import create_app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PHOTO = (EXAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


@pytest.fixture
def client(analyzer):
    return TestClient(create_app(analyzer, max_upload=200_000))


def test_health_and_model(client):
    assert client.get("/v1/health").json()["status"] == "ok"
    model = client.get("/v1/model").json()
    assert model["classes"][3] == "happy" and model["detector"] == "yunet" and model["input"]["image_size"] == 48


def test_predict_raw_body_and_multipart_give_fer_predicts_json(client):
    raw = client.post("/v1/predict", content=PHOTO, headers={"x-filename": "astronaut.jpg"})
    assert raw.status_code == 200
    record = raw.json()
    assert record["path"] == "astronaut.jpg" and record["status"] == "ok" and record["size"] == [512, 512]
    assert [f["label"] for f in record["faces"]] == ["happy"]
    form = client.post("/v1/predict", files={"image": ("mine.jpg", PHOTO, "image/jpeg")})
    assert form.status_code == 200 and form.json()["path"] == "mine.jpg"
    assert form.json()["faces"][0]["scores"] == record["faces"][0]["scores"]


def test_bad_requests_get_4xx_and_the_server_keeps_serving(client):
    corrupt = client.post("/v1/predict", content=PHOTO[: len(PHOTO) // 3])
    assert corrupt.status_code == 400 and "corrupt or truncated" in corrupt.json()["error"]
    assert client.post("/v1/predict", content=b"").status_code == 400
    assert client.post("/v1/predict", content=b"plain text").status_code == 400
    too_big = client.post("/v1/predict", content=b"\xff" * 300_000)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
    assert client.post("/v1/predict", files={"image": ("big.jpg", b"\xff" * 300_000, "image/jpeg")}).status_code == 413
    assert client.get("/v1/predict").status_code == 405
    bad_flag = client.post("/v1/predict?orient=maybe", content=PHOTO)
    assert bad_flag.status_code == 422 and "orient" in bad_flag.json()["error"]
    assert client.post("/v1/predict", content=PHOTO).status_code == 200  # still serving


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".webm", "VP80"), (".avi", "MJPG"), (".3gp", "mp4v")])
def test_a_video_upload_is_told_it_is_a_video(client, tmp_path, suffix, fourcc):
    import cv2
    import numpy as np

    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 64))
    for _ in range(3):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.release()
    answer = client.post("/v1/predict", files={"image": (path.name, path.read_bytes()[:150_000], "video/mp4")})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"{path.name}: a video, not a photo; fer predict reads videos")


def test_an_upside_down_photo_is_read_upright_unless_the_client_says_orient_false(client):
    """Uploads are searched in four turns (a photo with its EXIF tag stripped); camera frames send orient=false."""
    from io import BytesIO

    from PIL import Image

    upside_down = BytesIO()
    Image.open(BytesIO(PHOTO)).rotate(180).save(upside_down, format="JPEG", quality=95)
    record = client.post("/v1/predict", content=upside_down.getvalue()).json()
    assert record["turned"] == 180 and [f["label"] for f in record["faces"]] == ["happy"]
    assert client.post("/v1/predict?orient=false", content=upside_down.getvalue()).json()["turned"] == 0


def test_no_place_in_the_queue_is_503(analyzer):
    full = TestClient(create_app(analyzer, max_waiting=0))
    busy = full.post("/v1/predict", content=PHOTO)
    assert busy.status_code == 503 and "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "Start webcam" in page.text
    assert "fetch(`/v1/predict${query}`" in client.get("/static/app.js").text
    for asset in ("/", "/static/app.js", "/static/style.css"):
        assert "://" not in client.get(asset).text  # no CDN: nothing is fetched from anywhere but this server


def test_https_with_a_certificate_and_one_line_for_a_missing_half(tmp_path):
    """fer serve --certfile --keyfile serves HTTPS (what a phone's browser needs to open its camera on the page);
    one of the two alone, or a missing file, is one line before the model loads."""
    import shutil
    import socket
    import ssl
    import subprocess
    import sys
    import time
    import urllib.request

    from typer.testing import CliRunner

    from fercli.cli import app

    runner = CliRunner()
    alone = runner.invoke(app, ["serve", "--certfile", str(tmp_path / "cert.pem")])
    assert alone.exit_code == 1 and "--certfile and --keyfile go together" in alone.stderr
    missing = runner.invoke(app, ["serve", "--certfile", str(tmp_path / "c.pem"), "--keyfile", str(tmp_path / "k.pem")])
    assert missing.exit_code == 1 and "--certfile" in missing.stderr and "no such file" in missing.stderr
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem"), "-days", "1", "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "fercli", "serve", "--port", str(port), "--certfile",
                             str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE  # self-signed: as a browser told to trust it
    try:
        deadline, answer = time.time() + 30, None
        while time.time() < deadline and answer is None:
            try:
                answer = urllib.request.urlopen(f"https://127.0.0.1:{port}/v1/health", timeout=2, context=unverified)
            except OSError:
                time.sleep(0.2)
        assert answer is not None and answer.status == 200
        answer.close()  # an open connection would hold the server's graceful shutdown
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert f"open https://127.0.0.1:{port}" in stderr.decode()


def test_a_port_in_use_or_an_address_elsewhere_is_one_line_before_the_model_loads(monkeypatch):
    """Before, the model loaded, "open http://127.0.0.1:8000" was printed, then uvicorn's own "[Errno 98] error while
    attempting to bind" and exit 3."""
    import socket

    from typer.testing import CliRunner

    from fercli.cli import app
    from fercli.commands import serve as serve_command

    loaded = []
    monkeypatch.setattr(serve_command, "FaceAnalyzer", lambda *a, **k: loaded.append(1))
    runner = CliRunner()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = runner.invoke(app, ["serve", "--port", str(port)])
    assert in_use.exit_code == 1 and loaded == [] and in_use.stdout == ""
    assert in_use.stderr.strip().splitlines() == [
        f"error: port {port} is already in use on 127.0.0.1 (another fer serve?): stop that one, or pick another port "
        f"with --port {port + 1}"]
    elsewhere = runner.invoke(app, ["serve", "--host", "203.0.113.7"])  # TEST-NET-3: no computer's own address
    assert elsewhere.exit_code == 1 and loaded == [] and "not an address of this computer" in elsewhere.stderr
    unknown = runner.invoke(app, ["serve", "--host", "no-such-host.invalid"])
    assert unknown.exit_code == 1 and loaded == [] and "not an address or a name" in unknown.stderr


def test_the_page_address_is_one_a_browser_can_open():
    """--host 0.0.0.0 listens on every network, but http://0.0.0.0:8000 is no page: this computer's own address,
    then its address on the network (for a phone), are printed instead."""
    from fercli.faces.serve import page_addresses

    every = page_addresses("0.0.0.0", 8000, "https")
    assert every[0] == "https://127.0.0.1:8000" and not any("0.0.0.0" in a or "//127." in a for a in every[1:])
    assert page_addresses("127.0.0.1", 8000, "http") == ["http://127.0.0.1:8000"]
    assert page_addresses("::1", 8080, "http") == ["http://[::1]:8080"]
