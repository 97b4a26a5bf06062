"""`fer serve` under load, on 127.0.0.1 only: concurrent clients post the example photo, each once or for a while.

Levels (--clients, default 1 4 16 50): every client posts the photo for --seconds; printed: requests/s, p50 and p99
latency of the answered, errors (4xx/5xx other than 503, failed connections: the goal is none), 503 busy answers
and the server's memory (its processes together: the server and its analyzer workers). --burst N: N clients post
one photo each at the same moment (all should be answered within the wait limit). --workers compares servers with
that many analyzer processes. --probes: memory of hostile uploads (decompression bombs, 20 MB uploads chunked and
not, 24 slow 19 MB uploads at once). --soak MINUTES: 16 clients for that long, memory sampled every 30 s. Stops by
itself: the server is shut down after each part.

Usage: python benchmarks/serve_load.py [--clients 1 4 16 50] [--seconds 20] [--workers 1 2] [--burst 50]
       [--probes] [--soak 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import statistics
import struct
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


def tree_memory_mb(pid: int) -> float:
    """Resident memory of a process and its children (the analyzer workers), in MB (Linux /proc)."""
    total = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if int(fields.get("Pid", "0")) == pid or int(fields.get("PPid", "0").strip()) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return total


@contextlib.contextmanager
def server(workers: int):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fercli", "serve", "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield base, proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, float]:
    start = time.perf_counter()
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return 200, time.perf_counter() - start
    except urllib.error.HTTPError as exc:
        return exc.code, time.perf_counter() - start
    except OSError:
        return -1, time.perf_counter() - start


def load(url: str, body: bytes, clients: int, seconds: float) -> dict:
    results: list[tuple[int, float]] = []
    until = time.time() + seconds

    def client() -> None:
        while time.time() < until:
            results.append(post(url, body))

    return summary(results, run_clients(client, clients))


def burst(url: str, body: bytes, clients: int) -> dict:
    results: list[tuple[int, float]] = []
    gate = threading.Barrier(clients)

    def client() -> None:
        gate.wait()
        results.append(post(url, body))

    return summary(results, run_clients(client, clients))


def run_clients(client, clients: int) -> float:
    """``clients`` threads running ``client``; the seconds until the last one ends."""
    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def summary(results: list[tuple[int, float]], elapsed: float) -> dict:
    ok = sorted(latency for status, latency in results if status == 200)
    return {"requests_per_s": len(ok) / elapsed, "ok": len(ok),
            "p50_ms": 1000 * statistics.median(ok) if ok else 0, "p99_ms": 1000 * ok[int(0.99 * (len(ok) - 1))] if ok else 0,
            "busy": sum(1 for s, _ in results if s == 503), "errors": sum(1 for s, _ in results if s not in (200, 503))}


def levels(args, body: bytes) -> None:
    rows = []
    for workers in args.workers:
        with server(workers) as (base, pid, _port):
            post(f"{base}/v1/predict", body)  # warm-up
            for clients in args.clients:
                r = load(f"{base}/v1/predict", body, clients, args.seconds)
                rows.append([workers, clients, f"{r['requests_per_s']:.1f}", f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}",
                             r["ok"], r["busy"], r["errors"], f"{tree_memory_mb(pid):.0f}"])
            if args.burst:
                r = burst(f"{base}/v1/predict", body, args.burst)
                rows.append([workers, f"burst {args.burst}", "", f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", r["ok"],
                             r["busy"], r["errors"], f"{tree_memory_mb(pid):.0f}"])
    print_table(f"fer serve, POST /v1/predict of examples/astronaut.jpg (512x512, one face), {args.seconds:.0f} s per "
                f"level, 127.0.0.1 ({machine()})", ["workers", "clients", "requests/s", "p50 ms", "p99 ms", "answered",
                                                    "503 busy", "errors", "server MB"], rows)


def progressive_bomb() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG", progressive=True)
    data = bytearray(buffer.getvalue())
    at = data.index(b"\xff\xc2")
    data[at + 5 : at + 9] = struct.pack(">HH", 28000, 28000)
    return bytes(data)


def raw_upload(port: int, size: int, *, chunked: bool, seconds: float = 0.0) -> int:
    """An upload of ``size`` bytes over a plain socket, spread over ``seconds``; the answer's status (-1: none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        head = "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
        sock.sendall(head.encode())
        piece, sent = b"\xff" * 262144, 0
        try:
            while sent < size:
                part = piece[: size - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
                if seconds:
                    time.sleep(seconds * len(part) / size)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
            answer = sock.recv(100)
        except OSError:
            return -1
        return int(answer.split()[1]) if answer.startswith(b"HTTP/") else -1


def probes(body: bytes) -> None:
    rows = []
    with server(1) as (base, pid, port):
        post(f"{base}/v1/predict", body)
        before = tree_memory_mb(pid)
        cases = [("progressive JPEG declaring 28000x28000", lambda: post(f"{base}/v1/predict", progressive_bomb())[0]),
                 ("20 MB raw upload", lambda: raw_upload(port, 20 * 1024 * 1024 - 1000, chunked=False)),
                 ("20 MB chunked upload", lambda: raw_upload(port, 20 * 1024 * 1024 - 1000, chunked=True)),
                 ("60 MB chunked upload", lambda: raw_upload(port, 60 * 1024 * 1024, chunked=True))]
        for name, run in cases:
            start = time.perf_counter()
            status = run()
            rows.append([name, status, f"{time.perf_counter() - start:.2f}", f"{tree_memory_mb(pid) - before:+.0f}"])
        results, peak = [], [0.0]
        threads = [threading.Thread(target=lambda: results.append(raw_upload(port, 19 * 1024 * 1024, chunked=False,
                                                                             seconds=20))) for _ in range(24)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak[0] = max(peak[0], tree_memory_mb(pid) - before)
            time.sleep(0.5)
        statuses = {s: results.count(s) for s in sorted(set(results))}
        rows.append(["24 slow 19 MB uploads (20 s each)", str(statuses), "", f"peak {peak[0]:+.0f}"])
    print_table(f"fer serve, hostile uploads, one at a time ({machine()})", ["upload", "status", "seconds", "server MB"], rows)


def soak(body: bytes, minutes: float, workers: int) -> None:
    rows = []
    with server(workers) as (base, pid, _port):
        post(f"{base}/v1/predict", body)
        for minute in range(int(minutes * 2)):
            r = load(f"{base}/v1/predict", body, 16, 30)
            rows.append([f"{(minute + 1) / 2:.1f}", f"{r['requests_per_s']:.1f}", f"{r['p99_ms']:.0f}", r["busy"],
                         r["errors"], f"{tree_memory_mb(pid):.0f}"])
    first, last = float(rows[0][-1]), float(rows[-1][-1])
    print_table(f"fer serve soak, 16 clients, {workers} worker(s) ({machine()})",
                ["minute", "requests/s", "p99 ms", "503 busy", "errors", "server MB"], rows)
    print(f"memory from the first half-minute to the last: {first:.0f} -> {last:.0f} MB ({(last - first) / first:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 50])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--burst", type=int, default=0, help="also N clients posting once at the same moment")
    parser.add_argument("--probes", action="store_true", help="memory of hostile uploads instead of the load levels")
    parser.add_argument("--soak", type=float, default=0, help="minutes of 16 clients instead of the load levels")
    args = parser.parse_args()
    body = (ROOT / "examples" / "astronaut.jpg").read_bytes()
    if args.probes:
        probes(body)
    elif args.soak:
        soak(body, args.soak, args.workers[0])
    else:
        levels(args, body)


if __name__ == "__main__":
    run_benchmark(main)
