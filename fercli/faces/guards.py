"""What stands between fer serve and the network: one error shape for every answer, the Host and Origin checks that
keep other sites' pages out, and file names from clients made safe to print."""

from __future__ import annotations

import ipaddress
import logging
import socket
import unicodedata
from urllib.parse import unquote, urlsplit

from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

MAX_NAME = 120  # characters of a client's file name kept for messages
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
log = logging.getLogger("fer.serve")


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
