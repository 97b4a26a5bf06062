"""`fer serve` under load, on 127.0.0.1 only: N concurrent clients post the example photo for a fixed time.

Prints requests/s, p50/p95 latency, errors (4xx/5xx other than 503, and failed connections: the goal is
none), 503 "busy" answers (the bounded queue refusing more than it holds), and the server's memory.
Stops by itself: each level runs --seconds, then the server is shut down.

Usage: python benchmarks/serve_load.py [--clients 1 4 8] [--seconds 30]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import ROOT, machine, print_table, run_benchmark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of the server process, in MB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def client(url: str, body: bytes, until: float, latencies: list, outcomes: list) -> None:
    while time.time() < until:
        start = time.perf_counter()
        request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "image/jpeg"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            outcomes.append(200)
            latencies.append(time.perf_counter() - start)
        except urllib.error.HTTPError as exc:
            outcomes.append(exc.code)
        except OSError:
            outcomes.append(-1)


def load(url: str, body: bytes, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    outcomes: list[int] = []
    until = time.time() + seconds
    threads = [threading.Thread(target=client, args=(url, body, until, latencies, outcomes)) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ok = sorted(latencies)
    return {"requests_per_s": len(ok) / elapsed, "p50_ms": 1000 * statistics.median(ok) if ok else 0,
            "p95_ms": 1000 * ok[int(0.95 * (len(ok) - 1))] if ok else 0, "ok": len(ok),
            "busy": outcomes.count(503), "errors": sum(1 for o in outcomes if o not in (200, 503))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fercli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        body = (ROOT / "examples" / "astronaut.jpg").read_bytes()
        load(f"{base}/v1/predict", body, 1, 2)  # warm-up
        rows = []
        for clients in args.clients:
            result = load(f"{base}/v1/predict", body, clients, args.seconds)
            rss, peak = memory_mb(server.pid)
            rows.append([clients, f"{result['requests_per_s']:.1f}", f"{result['p50_ms']:.0f}", f"{result['p95_ms']:.0f}",
                         result["ok"], result["busy"], result["errors"], f"{rss:.0f} / {peak:.0f}"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    print_table(f"fer serve, POST /v1/predict of examples/astronaut.jpg (512x512, one face), {args.seconds:.0f} s per "
                f"level, 127.0.0.1 ({machine()})",
                ["clients", "requests/s", "p50 ms", "p95 ms", "answered", "503 busy", "errors", "server MB (now / peak)"], rows)


if __name__ == "__main__":
    run_benchmark(main)
