"""Watching the service from outside: health until it answers, its processes, its group's memory."""

import threading
import time

import psutil
import requests

from service.errors import Refusal

POLL_SECONDS = 0.05
MEMORY_SAMPLE_SECONDS = 0.1


class GateFailure(Refusal):
    """The service could not be judged (it never became healthy, or exited)."""


def wait_until_healthy(url: str, process, deadline_seconds: float, started: float) -> float:
    """Seconds from process start to the first 200 on /api/health/, or GateFailure."""
    attempts = max(1, int(deadline_seconds / POLL_SECONDS))
    last = None
    for attempt in range(1, attempts + 1):
        if process.poll() is not None:
            raise GateFailure(
                f"the service exited with code {process.returncode} before it was healthy"
            )
        try:
            response = requests.get(f"{url}/api/health/", timeout=2, allow_redirects=False)
            if response.status_code == 200:
                return time.perf_counter() - started
            seen = f"HTTP {response.status_code}: {response.text[:160]}"
        except requests.RequestException as error:
            seen = type(error).__name__
        if seen != last:  # log each attempt whose answer differs from the one before
            print(f"health attempt {attempt}/{attempts}: {seen}", flush=True)
            last = seen
        if time.perf_counter() - started > deadline_seconds:
            break
        time.sleep(POLL_SECONDS)
    raise GateFailure(
        f"the service was not healthy within gate.cold_start_deadline_seconds="
        f"{deadline_seconds} (last answer: {last})"
    )


def process_tree_figures(root_pid: int) -> tuple[float, list[int], list[float]]:
    """The gunicorn master's RSS, its worker PIDs and the workers' unique memory, in MB."""
    root = psutil.Process(root_pid)
    master = next(
        (
            p
            for p in [root, *root.children(recursive=True)]
            if any(c.pid != p.pid for c in p.children())
        ),
        root,
    )
    workers = master.children()
    worker_mb = [w.memory_full_info().uss / 2**20 for w in workers]
    return master.memory_info().rss / 2**20, sorted(w.pid for w in workers), worker_mb


def settled_process_tree_figures(root_pid: int, timeout_seconds: float = 5.0):
    """process_tree_figures once the worker set has stopped changing.

    Health answers as soon as the first worker is up, but gunicorn forks the others with a
    random pause of up to 0.1 s each; a snapshot taken too early would miss them.
    """
    deadline = time.monotonic() + timeout_seconds
    figures = process_tree_figures(root_pid)
    unchanged_polls = 0
    while unchanged_polls < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        latest = process_tree_figures(root_pid)
        unchanged_polls = unchanged_polls + 1 if latest[1] == figures[1] else 0
        figures = latest
    return figures


class MemorySampler:
    """The group's usage every MEMORY_SAMPLE_SECONDS, in a thread, for the report's series."""

    def __init__(self, group, started: float) -> None:
        self.group, self.started = group, started
        self.seconds: list[float] = []
        self.usage_mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_SECONDS):
            try:
                usage = self.group.usage_mb()
            except OSError:
                return
            self.seconds.append(round(time.perf_counter() - self.started, 2))
            self.usage_mb.append(round(usage, 1))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
