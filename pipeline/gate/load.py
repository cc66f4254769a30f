"""Bounded HTTP load against a running service, every answer checked against parity's.

Used by the gate stage and the benchmark: a fixed number of real /api/predict/ requests
built from held-out samples, spread over a fixed number of threads, each with a timeout;
and a health probe that times /api/health/ while that load saturates the service.
"""

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import requests

from pipeline.gate.health_probe import probe_once
from pipeline.gate.watch import GateFailure
from pipeline.paths import REPO_ROOT


@dataclass
class LoadResult:
    """Latencies of the answered requests and what went wrong with the others."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Requests the client gave up on at its timeout: a wall time, apart from the failures.
    timeouts: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def percentile_ms(self, percent: float) -> float:
        return (
            float(np.percentile(self.latencies_ms, percent)) if self.latencies_ms else float("inf")
        )

    @property
    def throughput_rps(self) -> float:
        return len(self.latencies_ms) / self.wall_seconds if self.wall_seconds else 0.0


class Progress:
    """A live line on a terminal; plain lines every tenth of the way elsewhere (CI logs)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.interactive = sys.stdout.isatty()
        self.lock = threading.Lock()
        self.next_report = max(1, total // 10)

    def advance(self) -> None:
        with self.lock:
            self.done += 1
            if self.interactive:
                print(f"\r{self.label}: {self.done}/{self.total}", end="", flush=True)
                if self.done == self.total:
                    print()
            elif self.done >= self.next_report or self.done == self.total:
                print(f"{self.label}: {self.done}/{self.total}", flush=True)
                self.next_report += max(1, self.total // 10)


def drive_load(
    url: str,
    samples: np.ndarray,
    expected_probabilities: np.ndarray,
    labels: list[str],
    *,
    model_sha256: str,
    value_key: str = "probability",
    requests_total: int,
    concurrency: int,
    timeout_seconds: float,
    tolerance: float,
    label: str = "gate load",
) -> LoadResult:
    """Send `requests_total` float32 predictions over `concurrency` threads and check each:
    the model that answered must be `model_sha256`, its answer parity's within `tolerance`.

    `value_key` is what the answer calls the model's value (`Contract.value_key`:
    `probability` for a distribution, `score` otherwise).
    """
    result = LoadResult()
    progress = Progress(requests_total, label)
    sessions = threading.local()
    lock = threading.Lock()

    def one_request(request_index: int) -> None:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        sample_index = request_index % len(samples)
        body = samples[sample_index : sample_index + 1].astype("<f4").tobytes()
        started = time.perf_counter()
        try:
            response = sessions.session.post(
                f"{url}/api/predict/",
                params={"top_k": len(labels)},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=timeout_seconds,
            )
            elapsed_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                retry = response.headers.get("Retry-After")
                shed = f" (shed, Retry-After {retry})" if retry else ""
                raise RuntimeError(f"HTTP {response.status_code}{shed}: {response.text[:120]}")
            body = response.json()
            answer, served_sha256 = body["predictions"][0], body["model_sha256"]
        except requests.Timeout:
            with lock:
                result.timeouts.append(f"request {request_index}: no answer in {timeout_seconds} s")
            progress.advance()
            return
        except (requests.RequestException, RuntimeError, ValueError, KeyError) as error:
            with lock:
                result.failures.append(f"request {request_index}: {error}")
            progress.advance()
            return
        live = {entry["label"]: entry[value_key] for entry in answer["top_k"]}
        expected = expected_probabilities[sample_index]
        expected_label = labels[int(np.argmax(expected))]
        difference = max(abs(live.get(name, -1.0) - expected[i]) for i, name in enumerate(labels))
        with lock:
            result.latencies_ms.append(elapsed_ms)
            if served_sha256 != model_sha256:
                result.wrong_answers.append(
                    f"sample {sample_index}: served by model {served_sha256[:12]}, "
                    f"not the candidate {model_sha256[:12]}"
                )
            elif answer["label"] != expected_label or difference > tolerance:
                result.wrong_answers.append(
                    f"sample {sample_index}: {answer['label']} (parity: {expected_label}), "
                    f"max |dp| {difference:.2e}"
                )
        progress.advance()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one_request, range(requests_total)))
    result.wall_seconds = time.perf_counter() - started
    return result


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
