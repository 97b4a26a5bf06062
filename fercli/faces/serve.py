"""``fer serve``: the HTTP API and the web page, a FastAPI app over the face pipeline.

Analyzers: one in the server's process, or one in each of ``--workers`` processes (faces.pool). Requests are
admitted by the wait they can expect (faces.admission): a burst of quick ones is queued and served, a flood that
would wait longer than ``max_wait_s`` gets 503 with Retry-After, and bodies are read, bounded in size and time, only
once admitted. Every answer that is not a result is JSON ``{"error": "..."}`` (faces.guards), 4xx for what the
client sent, 500 for a fault of fer's, logged in one line; the server goes on.

Other origins: bound to this computer (loopback), the server answers only to its own names (Host: localhost,
127.0.0.1, [::1], or --allow-host NAME), so a web page cannot reach it through DNS rebinding; a POST from a page
of another origin is refused; no answer names a path of this computer.
"""

from __future__ import annotations

import errno
import logging
import socket
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from fercli import __version__
from fercli.errors import InputError
from fercli.faces.admission import FRAMING, MAX_UPLOAD_BYTES, MAX_WAIT_S, Admission, TooLarge, TooSlow, read_body
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.guards import OneErrorShape, SameOrigin, client_file_name, error, log, network_addresses
from fercli.faces.pool import LocalPool, ProcessPool

MAX_CONNECTIONS = 256  # uvicorn answers 503 past this many open connections and tasks


def web_folder() -> Path:
    return Path(str(resources.files("fercli.faces") / "web"))


def create_app(analyzer: FaceAnalyzer | LocalPool | ProcessPool, *, max_upload: int = MAX_UPLOAD_BYTES,
               max_wait_s: float = MAX_WAIT_S, allowed_hosts: tuple[str, ...] | None = None,
               body_budget: int | None = None) -> FastAPI:
    """analyzer: one FaceAnalyzer, or a pool of them. allowed_hosts: the names the Host header may carry (None: any;
    guards.serve_hosts gives fer serve's)."""
    pool = LocalPool(analyzer) if isinstance(analyzer, FaceAnalyzer) else analyzer
    admission = Admission(workers=pool.workers, max_wait_s=max_wait_s,
                          **({} if body_budget is None else {"budget": body_budget}))
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN (blank offline); /docs is fer's own page.
    app = FastAPI(title="fer", version=__version__, docs_url=None, redoc_url=None,
                  description="Facial expression recognition: POST an image to /v1/predict.")
    app.add_middleware(OneErrorShape)
    if allowed_hosts is not None:
        app.add_middleware(SameOrigin, hosts=allowed_hosts)
    app.state.admission, app.state.pool = admission, pool

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
        return {**pool.facts, "max_upload_bytes": max_upload, "workers": pool.workers}

    @app.post("/v1/predict")
    async def predict(request: Request, orient: bool = True):
        """An image as a multipart upload (any field name) or as the raw request body -> fer predict's JSON.

        orient=false: look for faces upright only (camera frames); by default a photo with no confidently upright
        face is also tried turned by 90, 180 and 270 degrees ("turned" in the answer says which won)."""
        declared = request.headers.get("content-length")
        declared = int(declared) if declared and declared.isdigit() else None
        if declared is not None and declared > max_upload + FRAMING:
            return too_large(max_upload)
        ticket = admission.enter(declared, max_upload)
        if isinstance(ticket, float):
            return error(503, f"busy: the wait would be about {ticket:.0f} s; try again shortly",
                         headers={"Retry-After": admission.retry_after(ticket)})
        served = None
        try:
            try:
                data, name = await read_upload(request, max_upload)
            except TooLarge:
                return too_large(max_upload)
            except TooSlow:
                return error(408, "the upload stalled (nothing sent for a while); send it again")
            except ClientDisconnect:
                log.warning("fer serve: a client went away during its upload (%s)",
                            request.client.host if request.client else "?")
                return error(400, "the upload ended before its end")
            if not data:
                return error(400, "empty upload: send an image file as the body or as a multipart field")
            record, served = await pool.predict(data, name=name, orient=orient)
        finally:
            admission.leave(ticket, served)
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


def too_large(limit: int) -> JSONResponse:
    return error(413, f"upload larger than {limit // (1024 * 1024)} MB; send a smaller image")


async def read_upload(request: Request, limit: int) -> tuple[bytes, str]:
    """The image's bytes and a name for messages. The whole body is read first, bounded in size and time whatever its
    kind (raw, multipart, chunked), then a multipart one is parsed from memory."""
    body = await read_body(request.stream(), limit + FRAMING)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if len(body) > limit:
            raise TooLarge
        return body, client_file_name(request.headers.get("x-filename"))
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=4, max_fields=16, max_part_size=limit + 1)
    for value in form.values():
        if hasattr(value, "read"):
            data = await value.read()
            if len(data) > limit:
                raise TooLarge
            return data, client_file_name(value.filename)
    return b"", "upload"


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


def run_server(pool: LocalPool | ProcessPool, *, sock: socket.socket, certfile: Path | None = None,
               keyfile: Path | None = None, allowed_hosts: tuple[str, ...] | None = None) -> None:
    import uvicorn

    logging.basicConfig(format="%(message)s")
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)} if certfile and keyfile else {}
    app = create_app(pool, allowed_hosts=allowed_hosts)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                                           timeout_keep_alive=5, **tls))
    server.run(sockets=[sock])
