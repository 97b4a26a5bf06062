"""``fer serve``: check the TLS files and the port, load the analyzer, say where the page is, serve until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from fercli import console
from fercli.choices import DetectorName
from fercli.faces.analyzer import FaceAnalyzer
from fercli.faces.guards import serve_hosts
from fercli.faces.pool import LocalPool, ProcessPool
from fercli.faces.serve import check_tls_files, listening_socket, page_addresses, run_server


def run_serve(*, host: str, port: int, checkpoint: Path | None, detector: DetectorName, certfile: Path | None,
              keyfile: Path | None, device_name: str, allow_hosts: tuple[str, ...] = (), workers: int = 1) -> None:
    check_tls_files(certfile, keyfile)  # before the model loads: a wrong path or a port in use is one line at once
    sock = listening_socket(host, port)
    options = {"model": checkpoint, "detector": detector, "device": device_name}
    if workers > 1:
        FaceAnalyzer(**options)  # a bad model is one line here, before the worker processes start
        pool = ProcessPool(options, workers)
    else:
        pool = LocalPool(FaceAnalyzer(**options))
    here, *network = page_addresses(host, port, "https" if certfile else "http")
    elsewhere = f", or {' or '.join(network)} from another device on the network" if network else ""
    processes = f", {workers} analyzer processes" if workers > 1 else ""
    console.info(f"fer serve: open {here}{elsewhere} (API: {here}/docs{processes}); Ctrl-C stops it")
    try:
        run_server(pool, sock=sock, certfile=certfile, keyfile=keyfile, allowed_hosts=serve_hosts(host, allow_hosts))
    finally:
        pool.close()
