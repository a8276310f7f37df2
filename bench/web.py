"""The web side under load, against a static file server serving the same feed, in the same run.

    .venv/bin/python bench/web.py

1. 200 concurrent readers, 2,000 requests of /feeds/atom.xml on loopback: errors, p50, p99, requests/s.
2. 300 slow connections (half a request each, then nothing) held open: how long a normal request then takes.

`publisher serve` (waitress) and `python -m http.server` each run in their own process; the load comes
from this one (threads, http.client). Not a test: figures for the README's table.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READERS, REQUESTS, SLOW = 200, 2000, 300
FEED = "/feeds/atom.xml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def get(port: int, timeout: float = 10) -> float:
    began = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", FEED)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise OSError(f"status {response.status}")
    finally:
        connection.close()
    return time.perf_counter() - began


def readers(port: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    left = [REQUESTS]

    def reader() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                took = get(port)
            except OSError:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(took)

    began = time.perf_counter()
    threads = [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return {
        "errors": errors[0],
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": p99 * 1000,
        "rps": len(latencies) / elapsed,
    }


def slow_then_normal(port: int) -> float:
    held: list[socket.socket] = []
    try:
        for _ in range(SLOW):
            try:
                one = socket.create_connection(("127.0.0.1", port), timeout=5)
                one.sendall(b"GET /feeds/atom.xml HTTP/1.1\r\nHost: bench\r\n")
                held.append(one)
            except OSError:
                break
        time.sleep(0.5)
        try:
            return get(port, timeout=30) * 1000
        except OSError:
            return float("inf")
    finally:
        for one in held:
            one.close()


def main() -> None:
    sys.path.insert(0, str(REPO))
    from publisher.build.builder import build
    from publisher.site.config import load_site

    work = Path(tempfile.mkdtemp(prefix="publisher-bench-web-"))
    site = work / "site"
    site.mkdir()
    for name in ("events", "media"):
        shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "publisher.toml", site / "publisher.toml")
    build(load_site(site, env={}))
    env = {**os.environ, "PUBLISHER_DATABASE_URL": f"sqlite:///{work / 'bench.db'}", "PUBLISHER_SECRET": "bench"}
    ours, static = free_port(), free_port()
    servers = {
        "publisher serve (waitress)": (
            ours,
            [sys.executable, "-m", "publisher", "--site", str(site), "serve", "--port", str(ours)],
        ),
        "python -m http.server": (static, [sys.executable, "-m", "http.server", str(static), "-b", "127.0.0.1"]),
    }
    rows = []
    for name, (port, command) in servers.items():
        process = subprocess.Popen(command, cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(port)
            load = readers(port)
            slow = slow_then_normal(port)
        finally:
            process.terminate()
            process.wait(10)
        rows.append((name, load, slow))
    print(f"| server | errors / {REQUESTS} | p50 ms | p99 ms | req/s | a request with {SLOW} slow connections open |")
    print("|---|---|---|---|---|---|")
    for name, load, slow in rows:
        shown = "no answer" if slow == float("inf") else f"{slow:.0f} ms"
        print(
            f"| {name} | {load['errors']:.0f} | {load['p50_ms']:.0f} | {load['p99_ms']:.0f} "
            f"| {load['rps']:.0f} | {shown} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
