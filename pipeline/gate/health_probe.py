"""Health probes as Render's checker sends them, run beside a load in a process of their own.

`python -m pipeline.gate.health_probe URL INTERVAL TIMEOUT ACCOUNTING_FILE` sends GET
/api/health/ every INTERVAL seconds until its stdin closes, and prints one JSON line per
probe: [seconds, CPU-seconds the service's group spent meanwhile (from ACCOUNTING_FILE),
failure or null]. It runs in a process separate from the gate's load clients, at the highest
priority it may take: in a thread beside them a probe would also count the time its own
thread waits for the GIL or for a core while the service works on, which a busy host
stretches.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import requests

from pipeline.cgroups.common import usage_seconds
from pipeline.gate.watch import GateFailure
from pipeline.paths import REPO_ROOT


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


class HealthProbe:
    """Times GET /api/health/ every `interval_seconds`, as Render's checker does.

    A probe that times out or answers anything but 200 counts as failed, and its latency as
    the whole timeout: to Render it is a failed health check either way. Given the group's
    `accounting_file`, each probe also records the CPU-seconds the service spent while it
    waited, from a process of its own (pipeline/gate/health_probe.py); without one, the
    probes run in a thread of this process.
    """

    def __init__(
        self,
        url: str,
        interval_seconds: float,
        timeout_seconds: float,
        accounting_file: Path | None = None,
    ) -> None:
        self.url, self.interval, self.timeout = url, interval_seconds, timeout_seconds
        self.accounting_file = accounting_file
        self.cpu_waits_s: list[float] = []
        self.latencies_s: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "HealthProbe":
        if self.accounting_file is None:
            self._thread.start()
            return self
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.gate.health_probe",
                self.url,
                str(self.interval),
                str(self.timeout),
                str(self.accounting_file),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._process.stdout.readline() != "ready\n":  # its imports done, probes begin
            self._process.kill()
            raise GateFailure(
                f"the health probe process did not start (exit {self._process.wait()}); "
                f"run `python -m pipeline.gate.health_probe` by hand to see why"
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._process is None:
            self._stop.set()
            self._thread.join(timeout=self.timeout + 1)
            return
        try:  # communicate() closes its stdin: it stops after the probe in hand
            output, _ = self._process.communicate(timeout=self.timeout + self.interval + 10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            output, _ = self._process.communicate()
        for line in output.splitlines():
            seconds, cpu, failure = orjson.loads(line)
            self.latencies_s.append(seconds)
            self.cpu_waits_s.append(cpu)
            if failure:
                self.failures.append(failure)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            seconds, failure = probe_once(session, self.url, self.timeout)
            self.latencies_s.append(seconds)
            if failure:
                self.failures.append(failure)
            self._stop.wait(self.interval)


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
