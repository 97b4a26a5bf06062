"""``fer serve``: the HTTP API and the web page, a FastAPI app over the face pipeline.

One FaceAnalyzer serves every request, one at a time (OpenCV's detector keeps per-call state); at most
``max_waiting`` requests wait their turn, the next ones get 503 at once, so a burst cannot pile up
memory. Bad uploads get a 4xx JSON ``{"error": "..."}`` and the server goes on.
"""

from __future__ import annotations

import errno
import socket
import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from fercli import __version__
from fercli.errors import InputError
from fercli.faces.analyzer import FaceAnalyzer

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_WAITING = 8


class TooLarge(Exception):
    pass


def web_folder() -> Path:
    return Path(str(resources.files("fercli.faces") / "web"))


def create_app(analyzer: FaceAnalyzer, *, max_upload: int = MAX_UPLOAD_BYTES, max_waiting: int = MAX_WAITING) -> FastAPI:
    app = FastAPI(title="fer", version=__version__,
                  description="Facial expression recognition: POST an image to /v1/predict.")
    turn = threading.Lock()
    places = threading.BoundedSemaphore(max_waiting)

    def analyze(data: bytes, name: str, orient: bool) -> dict:
        with turn:
            return analyzer.predict(data, name=name, orient=orient)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 has a "detail" list; fer's answers say what is wrong in one "error" line."""
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return error(422, f"bad request parameter ({problems})")

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/model")
    def model() -> dict:
        classifier = analyzer.classifier
        return {"classes": list(classifier.classes), "model": str(classifier.path), "runs_on": classifier.runs_on,
                "parameters": classifier.parameters, "input": classifier.preprocess.to_dict(),
                "detector": type(analyzer.detector).__name__.lower() if analyzer.detector else None,
                "detect_size": analyzer.detect_size, "max_upload_bytes": max_upload}

    @app.post("/v1/predict")
    async def predict(request: Request, orient: bool = True):
        """An image as a multipart upload (any field name) or as the raw request body -> fer predict's JSON.

        orient=false: look for faces upright only (camera frames); by default a photo with no confidently upright
        face is also tried turned by 90, 180 and 270 degrees ("turned" in the answer says which won)."""
        try:
            data, name = await read_upload(request, max_upload)
        except TooLarge:
            return error(413, f"upload larger than {max_upload // (1024 * 1024)} MB; send a smaller image")
        if not data:
            return error(400, "empty upload: send an image file as the body or as a multipart field")
        if not places.acquire(blocking=False):
            return error(503, "busy: too many requests waiting; try again shortly", headers={"Retry-After": "1"})
        try:
            record = await run_in_threadpool(analyze, data, name, orient)
        finally:
            places.release()
        if record["status"] == "error":
            return error(400, f"{name}: {record['error']}")
        return record

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(web_folder() / "index.html")

    app.mount("/static", StaticFiles(directory=web_folder()), name="static")
    return app


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


async def read_upload(request: Request, limit: int) -> tuple[bytes, str]:
    """The image's bytes and a name for messages; stops reading past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # multipart framing adds a little
        raise TooLarge
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=limit + 1)
        for value in form.values():
            if hasattr(value, "read"):
                data = await value.read()
                if len(data) > limit:
                    raise TooLarge
                return data, value.filename or "upload"
        return b"", "upload"
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks), request.headers.get("x-filename", "upload")


def check_tls_files(certfile: Path | None, keyfile: Path | None) -> None:
    """HTTPS needs both files, readable; checked before anything starts."""
    if (certfile is None) != (keyfile is None):
        raise InputError("--certfile and --keyfile go together: give both for HTTPS, or neither")
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is not None and not path.is_file():
            raise InputError(f"{option} {path}: no such file (a self-signed pair for a phone on your network: openssl "
                             "req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=fer)")


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads: a port in use or a wrong --host is one line at once
    (uvicorn would log its own error after the model had loaded, below a line saying where to open the page)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"--host {host}: not an address or a name this computer knows; 127.0.0.1 serves this computer "
                         "only, 0.0.0.0 every network it is on") from None
    failures = []
    for family, kind, protocol, _name, address in addresses:  # "localhost" may be ::1 first, on a host without IPv6
        try:
            sock = socket.socket(family, kind, protocol)
        except OSError as exc:
            failures.append(exc)
            continue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after Ctrl-C (TIME_WAIT)
        try:
            sock.bind(address)
            return sock
        except OSError as exc:
            sock.close()
            failures.append(exc)
    raise InputError(_why_not_bound(failures[0], host, port))


def _why_not_bound(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is already in use on {host} (another fer serve?): stop that one, or pick another port "
                f"with --port {port + 1 if port < 65535 else 8000}")
    if exc.errno == errno.EACCES:
        return f"port {port}: ports under 1024 need administrator rights; use a higher one, e.g. --port 8000"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host}: not an address of this computer; 127.0.0.1 serves this computer only, 0.0.0.0 every "
                "network it is on")
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def page_addresses(host: str, port: int, scheme: str) -> list[str]:
    """Where to open the page. 0.0.0.0 (every network) is no address a browser can open: this computer's own
    (127.0.0.1) and its address on the network (for a phone) instead."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"]
    return [f"{scheme}://{ip}:{port}" for ip in ["127.0.0.1", *network_addresses()]]


def network_addresses() -> list[str]:
    """This computer's IPv4 address on its network, if it has one: the one its route to a private address leaves
    from. Connecting a UDP socket sends nothing; it only picks the route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:  # no network at all
            return []
    return [] if address.startswith(("127.", "0.")) else [address]


def run_server(analyzer: FaceAnalyzer, *, sock: socket.socket, certfile: Path | None = None,
               keyfile: Path | None = None) -> None:
    import uvicorn

    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)} if certfile and keyfile else {}
    server = uvicorn.Server(uvicorn.Config(create_app(analyzer), log_level="warning", **tls))
    server.run(sockets=[sock])
