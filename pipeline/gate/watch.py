"""Watching a service from outside as it starts: its health until it answers, and its log.

The log is read before the service's group is stopped, so its last lines are the service's own
and not its answer to our SIGTERM.
"""

import time
from pathlib import Path

import requests

from service.errors import Refusal

POLL_SECONDS = 0.05
LOG_TAIL_LINES = 15
# gunicorn's own alarms (a worker timed out, was killed, exited) and tracebacks: when a worker
# was replaced, why is usually far above the last lines.
ALERT_MARKERS = ("[CRITICAL]", "[ERROR]", "[WARNING]", "Traceback", "SIGKILL", "Killed")
LOG_ALERT_LINES = 10


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


def log_tail(log_path: Path) -> list[str]:
    """The last lines of a service log, after its last alarms (if they are not among them)."""
    lines = log_path.read_text(errors="replace").splitlines()
    tail = lines[-LOG_TAIL_LINES:]
    alerts = [line for line in lines[:-LOG_TAIL_LINES] if any(m in line for m in ALERT_MARKERS)]
    return [*alerts[-LOG_ALERT_LINES:], *(["..."] if alerts else []), *tail]
