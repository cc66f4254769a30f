"""Hostile and ordinary traffic against a real server on loopback, in a real CPU group.

Shared by the server comparison (benchmarks/servers.py), the CPU benchmark
(benchmarks/cpu_per_request.py) and the hostile-traffic tests; the CPU groups are
pipeline.cgroups' own (any backend). Every loop here is bounded in count and in time; every
socket goes to 127.0.0.1.
"""

import contextlib
import http.client
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline.cgroups import ResourceGroup, cpu_limit
from pipeline.gate.render_service import free_port
from pipeline.paths import REPO_ROOT

HEALTH_TIMEOUT_SECONDS = 5.0  # Render's health checker gives up after 5 s
START_DEADLINE_SECONDS = 60.0


@contextlib.contextmanager
def cpu_group(share: float | None, name_prefix: str) -> Iterator[ResourceGroup]:
    """A group of `share` CPUs (None: unthrottled) that the kernel must enforce.

    A run labelled 0.1 CPU that ran unthrottled would be a wrong figure, so a host where no
    backend can hold a CPU quota is an error here, not the warning pipeline.cgroups gives.
    """
    with cpu_limit(share, name_prefix=name_prefix) as group:
        if share is not None and not group.cpu_enforced:
            raise RuntimeError(
                f"the {share} CPU quota cannot be enforced here ({group.cpu_note}); run as root "
                "(or with passwordless sudo) on a host with a cgroup v1 or v2 cpu controller"
            )
        yield group


def start_server(
    group: ResourceGroup,
    command: str,
    env: dict,
    health_path: str = "/api/health/",
    deadline_seconds: float = START_DEADLINE_SECONDS,
    cwd: Path = REPO_ROOT,
) -> tuple[subprocess.Popen, int, float]:
    """Start `command` in `group` on a free loopback port ({port} in it, and $PORT, name it).

    Returns the process, its port and the seconds to its first 200 on `health_path`; the group
    stops it when it closes.
    """
    port = free_port()
    started = time.perf_counter()
    process = group.popen(
        command.replace("{port}", str(port)),
        cwd=cwd,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while time.perf_counter() - started < deadline_seconds:
        if health_probe(port, timeout=1, path=health_path)[0] == 200:
            return process, port, time.perf_counter() - started
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode} before it was healthy")
        time.sleep(0.02)
    raise RuntimeError(f"{command} was not healthy within {deadline_seconds:.0f} s")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (threads included), from /proc."""
    total, pending, ticks = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (OSError, ValueError):
            continue
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return round(total / 1024, 1)


def health_probe(
    port: int, timeout: float = HEALTH_TIMEOUT_SECONDS, path: str = "/api/health/"
) -> tuple[int, float]:
    """One GET `path` as Render's checker sends it: (status or 0 on failure, seconds)."""
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started


def probe_health(port: int, count: int, interval: float) -> list[tuple[int, float]]:
    """`count` health probes, `interval` seconds apart (bounded: count x (interval + 5 s))."""
    probes = probe_health_with_cpu(port, count, interval, cpu_seconds=lambda: 0.0)
    return [(status, seconds) for status, seconds, _ in probes]


def probe_health_with_cpu(
    port: int, count: int, interval: float, cpu_seconds
) -> list[tuple[int, float, float]]:
    """As probe_health, with the CPU-seconds `cpu_seconds()` grew by while each probe waited:
    (status or 0, seconds, CPU-seconds)."""
    results = []
    for _ in range(count):
        before = cpu_seconds()
        status, seconds = health_probe(port)
        results.append((status, seconds, cpu_seconds() - before))
        time.sleep(interval)
    return results


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that send nothing; the caller closes them."""
    sockets = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    return sockets


class SlowBodyClients:
    """Clients that send a predict header, then one body byte per second (slowloris)."""

    def __init__(self, port: int, count: int, declared_bytes: int, seconds: float) -> None:
        self.stop = threading.Event()
        header = (
            f"POST /api/predict/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared_bytes}\r\n\r\n"
        ).encode()
        self.threads = [
            threading.Thread(target=self._drip, args=(port, header, seconds), daemon=True)
            for _ in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _drip(self, port: int, header: bytes, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(header)
                while not self.stop.wait(1.0) and time.monotonic() < deadline:
                    connection.sendall(b"\0")
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)


def saturate(
    port: int, body: bytes, content_type: str, clients: int, seconds: float
) -> tuple[Counter, list[float]]:
    """`clients` threads posting `body` back to back for `seconds`: statuses, latencies (s)."""
    statuses: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        connection = None
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request(
                    "POST", "/api/predict/", body=body, headers={"Content-Type": content_type}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
                retry_after = response.getheader("Retry-After")
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except OSError:
                status, retry_after = 0, None
                if connection is not None:
                    connection.close()
                connection = None
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(time.perf_counter() - started)
            if status == 503:  # a client that honours Retry-After (at most 1 s here)
                time.sleep(min(1.0, float(retry_after or 1)))
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 15)
    return statuses, latencies


def flood(
    port: int, body: bytes, content_type: str, clients: int, seconds: float, timeout: float
) -> list[tuple[int, float]]:
    """`clients` threads posting `body` back to back for `seconds`, ignoring Retry-After.

    Returns (status, seconds) for every request sent; status 0 is no answer within `timeout`
    (or a connection the server dropped).
    """
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        connection = None
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                connection.request(
                    "POST", "/api/predict/", body=body, headers={"Content-Type": content_type}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except OSError:
                status = 0
                if connection is not None:
                    connection.close()
                connection = None
            with lock:
                answers.append((status, time.perf_counter() - started))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + timeout + 15)
    return answers
