"""fer serve and other origins: Host names, cross-site posts, paths, error shapes, faults and disconnects."""

import asyncio
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.guards import host_name, serve_hosts
from fercli.faces.serve import create_app

PHOTO = (Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


@pytest.fixture
def local(analyzer):
    """The app as fer serve makes it on 127.0.0.1 port 8000."""
    return TestClient(create_app(analyzer, allowed_hosts=serve_hosts("127.0.0.1")), base_url="http://127.0.0.1:8000")


def test_a_foreign_host_is_refused_and_the_servers_own_names_answer(local):
    for name in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert local.get("/v1/health", headers={"host": name}).status_code == 200, name
    for name in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
        answer = local.get("/v1/health", headers={"host": name})
        assert answer.status_code == 421 and "--allow-host" in answer.json()["error"], name
        assert local.post("/v1/predict", content=PHOTO, headers={"host": name}).status_code == 421


def test_allow_host_adds_a_name_and_a_network_bind_checks_nothing_unless_asked(analyzer):
    assert serve_hosts("0.0.0.0") is None and "lab.local" in serve_hosts("0.0.0.0", ("lab.local",))
    client = TestClient(create_app(analyzer, allowed_hosts=serve_hosts("127.0.0.1", ("fer.lab",))))
    assert client.get("/v1/health", headers={"host": "fer.lab:8000"}).status_code == 200
    assert host_name("[::1]:8000") == "::1" and host_name("Example.org:80") == "example.org"


def test_a_post_from_another_sites_page_is_refused_and_from_this_page_served(local):
    foreign = local.post("/v1/predict", content=PHOTO, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    own = local.post("/v1/predict", content=PHOTO, headers={"origin": "http://127.0.0.1:8000"})
    assert own.status_code == 200 and own.json()["faces"]
    assert local.post("/v1/predict", content=PHOTO).status_code == 200  # curl sends no Origin


def test_no_answer_names_a_path_of_this_computer(local):
    model = local.get("/v1/model").json()
    assert model["model"] == "fer_vgg.onnx" and "/" not in model["model"]


def test_the_api_page_needs_no_network(local):
    page = local.get("/docs")
    assert page.status_code == 200 and "POST /v1/predict" in page.text
    assert "http://" not in page.text.replace("http://127.0.0.1:8000", "") and "https://" not in page.text
    assert local.get("/redoc").status_code == 404 and local.get("/openapi.json").status_code == 200


def test_every_error_has_one_shape(local):
    for answer, status in ((local.get("/nowhere"), 404), (local.put("/v1/predict", content=b"x"), 405),
                           (local.post("/v1/predict?orient=maybe", content=PHOTO), 422),
                           (local.post("/v1/predict", content=b"not an image"), 400)):
        assert answer.status_code == status and set(answer.json()) == {"error"}, (status, answer.text)


def test_a_fault_is_a_json_500_and_one_log_line(analyzer, caplog, monkeypatch):
    client = TestClient(create_app(analyzer), raise_server_exceptions=False)
    monkeypatch.setattr(analyzer, "predict", lambda *a, **k: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="fer.serve"):
        answer = client.post("/v1/predict", content=PHOTO)
    assert answer.status_code == 500 and "ZeroDivisionError" in answer.json()["error"]
    lines = [r for r in caplog.records if r.name == "fer.serve"]
    assert len(lines) == 1 and lines[0].exc_info is None and "failed" in lines[0].getMessage()


def test_a_client_that_leaves_mid_upload_is_one_log_line(analyzer, caplog):
    app = create_app(analyzer)
    messages = iter([{"type": "http.request", "body": PHOTO[:1000], "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg")], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "scheme": "http", "http_version": "1.1", "root_path": "", "app": app}
    with caplog.at_level(logging.WARNING, logger="fer.serve"):
        asyncio.run(app(scope, receive, send))
    lines = [r for r in caplog.records if r.name == "fer.serve"]
    assert len(lines) == 1 and "went away" in lines[0].getMessage() and lines[0].exc_info is None


def test_file_names_are_bounded_and_may_be_in_any_script(local):
    long = local.post("/v1/predict", content=b"not an image", headers={"x-filename": "a" * 100_000})
    assert long.status_code == 400 and len(long.json()["error"]) < 400
    named = local.post("/v1/predict", content=PHOTO, headers={"x-filename": "%E5%86%99%E7%9C%9F.jpg"})
    assert named.json()["path"] == "写真.jpg"
