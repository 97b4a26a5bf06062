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


def test_admission_by_expected_wait_queues_a_burst_and_turns_away_a_flood():
    from fercli.faces.admission import Admission

    gate = Admission(workers=2, max_wait_s=10, first_guess_s=0.5, budget=10**9)
    # 0.5 s a request on 2 workers: the 41st finds 40 ahead of it, a 10 s wait, and is the last admitted
    admitted = [gate.enter(1000, 10**6) for _ in range(41)]
    assert not any(isinstance(t, float) for t in admitted)
    refused = gate.enter(1000, 10**6)
    assert isinstance(refused, float) and refused == pytest.approx(10.25) and Admission.retry_after(refused) == "11"
    for ticket in admitted[:20]:
        gate.leave(ticket, service_s=0.05)  # the machine proved faster: the average follows it
    assert not isinstance(gate.enter(1000, 10**6), float) and gate.service_s < 0.1


def test_bodies_in_flight_share_a_byte_budget_reserved_before_reading(analyzer):
    from fercli.faces.admission import Admission

    gate = Admission(workers=1, budget=50 * 1024 * 1024)
    slow = [gate.enter(None, 20 * 1024 * 1024) for _ in range(3)]  # no length declared: the largest is reserved
    assert [isinstance(t, float) for t in slow] == [False, False, True]
    client = TestClient(create_app(analyzer, body_budget=len(PHOTO) // 2))
    busy = client.post("/v1/predict", content=PHOTO)
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


def pulled_before_answer(app, headers: list[tuple[bytes, bytes]], first: bytes, chunk: bytes, chunks: int) -> tuple[int, int]:
    """Calls the app as a server would, offering ``first`` then ``chunks`` x ``chunk``: (bytes it pulled, status)."""
    import asyncio

    pulled, status = [0], []
    offered = iter([first] + [chunk] * chunks)

    async def receive():
        piece = next(offered, None)
        pulled[0] += len(piece or b"")
        return {"type": "http.request", "body": piece or b"", "more_body": piece is not None}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "scheme": "http", "http_version": "1.1", "root_path": "", "app": app}
    asyncio.run(app(scope, receive, send))
    return pulled[0], status[0]


def test_a_chunked_upload_is_cut_off_at_the_limit_not_read_whole(analyzer):
    """No Content-Length (chunked), raw or multipart: the server stops pulling one chunk past the limit, where it
    used to read a 60 MB multipart upload whole before its 413."""
    app = create_app(analyzer, max_upload=200_000)
    chunk, limit = b"\xff" * 65536, 200_000 + 64 * 1024 + 65536
    raw = pulled_before_answer(app, [(b"content-type", b"image/jpeg")], b"", chunk, 1000)
    assert raw[1] == 413 and raw[0] <= limit
    head = b'--fer\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
    form = pulled_before_answer(app, [(b"content-type", b"multipart/form-data; boundary=fer")], head, chunk, 1000)
    assert form[1] == 413 and form[0] <= limit + len(head)
    fields = b"".join(b'--fer\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i + b"x" * 150_000 + b"\r\n"
                      for i in range(8))  # eight text fields, each under the limit, together over it
    many = pulled_before_answer(app, [(b"content-type", b"multipart/form-data; boundary=fer")], fields, chunk, 0)
    assert many[1] == 413


def test_an_upload_that_stalls_is_dropped():
    import asyncio

    from fercli.faces.admission import TooSlow, read_body

    async def stalling():
        yield b"\xff\xd8"
        await asyncio.sleep(10)
        yield b"never"

    with pytest.raises(TooSlow):
        asyncio.run(read_body(stalling(), 1000, timeout_s=0.2))


def test_worker_processes_each_hold_an_analyzer_and_answer_alike():
    from fercli.faces.pool import ProcessPool

    pool = ProcessPool({"model": None}, workers=2)
    try:
        client = TestClient(create_app(pool))
        assert client.get("/v1/model").json()["workers"] == 2
        answers = [client.post("/v1/predict", content=PHOTO).json() for _ in range(4)]
        assert all([f["label"] for f in a["faces"]] == ["happy"] for a in answers)
        assert len({str(a["faces"][0]["scores"]) for a in answers}) == 1
    finally:
        pool.close()
