"""Health probes as Render's checker sends them, run in a process of their own.

`python -m pipeline.gate.health_probe URL INTERVAL TIMEOUT ACCOUNTING_FILE` sends GET
/api/health/ every INTERVAL seconds until its stdin closes, and prints one JSON line per
probe: [seconds, CPU-seconds the service's group spent meanwhile (from ACCOUNTING_FILE),
failure or null]. It runs in a process separate from the gate's load clients, at the highest
priority it may take: in a thread beside them, a probe also counted the time its own thread
waited for the GIL or for a core while the service kept working, and one busy-host round's
slowest probe read 2.9x a quiet round's.
"""

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import orjson
import requests

from pipeline.cgroups.common import usage_seconds


def probe_once(session, url: str, timeout: float) -> tuple[float, str | None]:
    """One GET /api/health/: (seconds, why it failed or None). A probe that times out or
    answers anything but 200 failed; to Render a timeout costs the whole timeout."""
    started = time.perf_counter()
    try:
        response = session.get(f"{url}/api/health/", timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        elapsed = max(time.perf_counter() - started, timeout)
        return elapsed, f"{type(error).__name__} after {elapsed:.2f} s"
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return elapsed, f"HTTP {response.status_code} after {elapsed:.2f} s"
    return elapsed, None


def main() -> None:
    url, interval, timeout, accounting = sys.argv[1:5]
    interval_s, timeout_s, accounting_file = float(interval), float(timeout), Path(accounting)
    with contextlib.suppress(OSError):  # first in line for a core where it may be
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    session = requests.Session()
    print("ready", flush=True)
    while not stop.is_set():
        before = usage_seconds(accounting_file) or 0.0
        seconds, failure = probe_once(session, url, timeout_s)
        cpu = (usage_seconds(accounting_file) or before) - before
        print(orjson.dumps([seconds, cpu, failure]).decode(), flush=True)
        stop.wait(interval_s)


if __name__ == "__main__":
    main()
