"""``fer serve``: the HTTP API and the web page, a FastAPI app over the face pipeline.

One FaceAnalyzer serves every request, one at a time (OpenCV's detector keeps per-call state); at most
``max_waiting`` requests wait their turn, the next ones get 503 at once, so a burst cannot pile up
memory. Every answer that is not a result is JSON ``{"error": "..."}`` (4xx for what the client sent, 500 for a
fault of fer's, logged in one line), and the server goes on.

Other origins: bound to this computer (loopback), the server answers only to its own names (Host: localhost,
127.0.0.1, [::1], or --allow-host NAME), so a web page cannot reach it through DNS rebinding; a POST from a page
of another origin is refused; no answer names a path of this computer.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import unicodedata
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from fercli import __version__
from fercli.errors import InputError
from fercli.faces.analyzer import FaceAnalyzer

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_WAITING = 8
MAX_NAME = 120  # characters of a client's file name kept for messages
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
log = logging.getLogger("fer.serve")


class TooLarge(Exception):
    pass


def web_folder() -> Path:
    return Path(str(resources.files("fercli.faces") / "web"))


def create_app(analyzer: FaceAnalyzer, *, max_upload: int = MAX_UPLOAD_BYTES, max_waiting: int = MAX_WAITING,
               allowed_hosts: tuple[str, ...] | None = None) -> FastAPI:
    """allowed_hosts: the names the Host header may carry (None: any; serve_hosts gives fer serve's)."""
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN (blank offline); /docs is fer's own page.
    app = FastAPI(title="fer", version=__version__, docs_url=None, redoc_url=None,
                  description="Facial expression recognition: POST an image to /v1/predict.")
    app.add_middleware(OneErrorShape)
    if allowed_hosts is not None:
        app.add_middleware(SameOrigin, hosts=allowed_hosts)
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

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404, 405 and the like, in fer's shape."""
        what = {404: f"no such page: {request.url.path[:200]}", 405: f"{request.method} is not allowed here"}
        return error(exc.status_code, what.get(exc.status_code, str(exc.detail)), headers=getattr(exc, "headers", None))

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/model")
    def model() -> dict:
        classifier = analyzer.classifier
        return {"classes": list(classifier.classes), "model": classifier.path.name, "runs_on": classifier.runs_on,
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
        except ClientDisconnect:
            log.warning("fer serve: a client went away during its upload (%s)", request.client.host if request.client else "?")
            return error(400, "the upload ended before its end")
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

    @app.get("/docs", include_in_schema=False)
    def api_page() -> FileResponse:
        return FileResponse(web_folder() / "api.html")

    app.mount("/static", StaticFiles(directory=web_folder()), name="static")
    return app


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


class OneErrorShape:
    """A fault of fer's while answering (an exception no handler took) is a JSON 500 and one log line, not a plain-text
    500 and a traceback; a client that left meanwhile is one line too."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            log.warning("fer serve: a client went away before its answer (%s %s)", scope["method"], scope["path"])
        except Exception as exc:  # noqa: BLE001 - the one place a fault becomes an answer
            log.error("fer serve: %s %s failed: %s: %s", scope["method"], scope["path"], type(exc).__name__, exc)
            if not started:
                await error(500, f"internal error ({type(exc).__name__}); the server goes on")(scope, receive, send)


class SameOrigin:
    """Requests must name one of ``hosts`` in their Host header (DNS rebinding: a page of evil.example whose name
    now points at 127.0.0.1 still says Host: evil.example), and a POST from a browser page must come from a page of
    this server (its Origin header's host is the Host it asked)."""

    def __init__(self, app, *, hosts: tuple[str, ...]):
        self.app, self.hosts = app, {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            message = (f"host {host[:100]!r} is not this server's name; fer serve answers to "
                       f"{', '.join(sorted(self.hosts))} (start it with --allow-host NAME for another)")
            return await error(421, message)(scope, receive, send)
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin and urlsplit(origin).netloc.lower() != host.lower():
            return await error(403, f"a page of {origin[:100]} may not send requests to fer serve")(scope, receive, send)
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """The name in a Host header, without its port: "localhost:8000" -> "localhost", "[::1]:8000" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def serve_hosts(host: str, allow: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The Host names fer serve answers to: bound to loopback, its own names (and ``allow``); bound elsewhere (a phone
    on the network), any, unless names are given with --allow-host."""
    if is_loopback(host):
        return (*LOOPBACK_NAMES, *allow)
    if allow:
        return (*LOOPBACK_NAMES, *network_addresses(), host, *allow)
    return None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def client_file_name(raw: str | None) -> str:
    """A name for messages from the client's x-filename (percent-encoded by fer's page: any script), printable and
    bounded, never echoed whole."""
    name = unquote(raw or "upload", errors="replace")
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return (name[:MAX_NAME] + "...") if len(name) > MAX_NAME else (name or "upload")


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
                return data, client_file_name(value.filename)
        return b"", "upload"
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks), client_file_name(request.headers.get("x-filename"))


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
               keyfile: Path | None = None, allowed_hosts: tuple[str, ...] | None = None) -> None:
    import uvicorn

    logging.basicConfig(format="%(message)s")
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)} if certfile and keyfile else {}
    server = uvicorn.Server(uvicorn.Config(create_app(analyzer, allowed_hosts=allowed_hosts), log_level="warning", **tls))
    server.run(sockets=[sock])
