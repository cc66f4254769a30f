"""The load the peer comparison puts on each server: one keep-alive client, then N at once.

Each load returns the service's CPU per answered request (what the kernel charged to the
server's group, in nanoseconds: /proc's per-process times step in 10 ms ticks, coarser than a
few requests cost) and the latencies. Every loop is bounded by a request count and a deadline;
every socket goes to 127.0.0.1.
"""

import http.client
import threading
import time
from collections.abc import Callable

import numpy as np

REQUEST_TIMEOUT_SECONDS = 60.0  # one request at 0.1 CPU waits behind at most 16 others


class Client:
    """One keep-alive HTTP connection posting the same encoded body."""

    def __init__(self, port: int, path: str, body: bytes, content_type: str) -> None:
        self.port, self.path, self.body = port, path, body
        self.headers = {"Content-Type": content_type}
        self.connection: http.client.HTTPConnection | None = None

    def post(self) -> tuple[int, bytes]:
        """(status, body); status 0 when the connection failed (it reconnects next time)."""
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS
                )
            self.connection.request("POST", self.path, body=self.body, headers=self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except OSError:
            self.close()
            return 0, b""

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


CpuClock = Callable[[], float]  # CPU-seconds the server has used so far


def summary(
    cpu_clock: CpuClock, cpu_before: float, wall_seconds: float, latencies: list, failed: int
):
    """CPU ms per answered request, throughput and latency percentiles of one load."""
    answered = len(latencies)
    cpu_seconds = cpu_clock() - cpu_before
    return {
        "answered": answered,
        "failed": failed,
        "cpu_ms": round(cpu_seconds * 1000 / answered, 3) if answered else None,
        "requests_per_s": round(answered / wall_seconds, 1) if wall_seconds else None,
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2) if answered else None,
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 2) if answered else None,
    }


def warm_up(client: Client, count: int, deadline_seconds: float) -> None:
    """Requests that load caches and lazy imports before anything is measured."""
    deadline = time.monotonic() + deadline_seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        status, answer = client.post()
        if status != 200:
            raise RuntimeError(f"HTTP {status} while warming up: {answer[:300]!r}")


def lone_client(cpu_clock: CpuClock, client: Client, count: int, deadline_seconds: float) -> dict:
    """`count` requests one after another on one connection (fewer if the deadline passes)."""
    latencies, failed = [], 0
    deadline = time.monotonic() + deadline_seconds
    cpu_before, began = cpu_clock(), time.perf_counter()
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        status, _ = client.post()
        if status == 200:
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1
    return summary(cpu_clock, cpu_before, time.perf_counter() - began, latencies, failed)


def concurrent_clients(
    cpu_clock: CpuClock, clients: list[Client], count: int, deadline_seconds: float
) -> dict:
    """`count` requests in all from every client at once, each on its own connection."""
    latencies: list[float] = []
    failures = [0]
    remaining = [count]
    lock = threading.Lock()
    deadline = time.monotonic() + deadline_seconds

    def run(client: Client) -> None:
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            status, _ = client.post()
            with lock:
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=run, args=(client,), daemon=True) for client in clients]
    cpu_before, began = cpu_clock(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=deadline_seconds + REQUEST_TIMEOUT_SECONDS)
    wall_seconds = time.perf_counter() - began
    with lock:  # a thread still blocked past its join timeout must not change the figures
        return summary(cpu_clock, cpu_before, wall_seconds, list(latencies), failures[0])
