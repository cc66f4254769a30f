"""A bounded HTTP load against a running service, every answer checked against parity's.

A fixed number of real /api/predict/ requests built from the held-out samples, spread over a
fixed number of client threads, each with a timeout: the model that answered must be the
candidate, and its answer parity's own within a tolerance.
"""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import requests

from pipeline.gate.expected import ExpectedAnswers
from pipeline.gate.watch import GateFailure
from pipeline.params import GateParams


@dataclass
class LoadResult:
    """Latencies of the answered requests and what went wrong with the others."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Requests the client gave up on at its timeout: a wall time, apart from the failures.
    timeouts: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def require_answered(self, where: str) -> None:
        """GateFailure naming the first requests that failed or timed out, if any did."""
        unanswered = self.failures + self.timeouts
        if unanswered:
            total = len(self.latencies_ms) + len(unanswered)
            raise GateFailure(
                f"{len(unanswered)} of {total} predictions were not answered {where}: "
                f"{'; '.join(unanswered[:3])}"
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


@dataclass(frozen=True)
class Load:
    """How many predictions over how many clients, each client's timeout, and how far an
    answer may stray from parity's."""

    requests: int
    concurrency: int
    timeout_seconds: float
    tolerance: float
    label: str = "gate load"

    @classmethod
    def of(cls, settings: GateParams, label: str = "gate load", **changes) -> "Load":
        """gate.requests over gate.concurrency clients, unless `changes` say otherwise."""
        load = cls(
            settings.requests,
            settings.concurrency,
            settings.request_timeout_seconds,
            settings.max_probability_diff,
            label,
        )
        return replace(load, **changes)


def drive_load(url: str, expected: ExpectedAnswers, load: Load) -> LoadResult:
    """Send `load.requests` float32 predictions over `load.concurrency` threads and check each:
    the model that answered must be the candidate, its answer parity's within the tolerance
    (under the answer's name for the model's value: `probability` for a distribution, `score`
    otherwise)."""
    result = LoadResult()
    progress = Progress(load.requests, load.label)
    sessions = threading.local()
    lock = threading.Lock()

    def one_request(request_index: int) -> None:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        samples, labels = expected.samples, expected.labels
        sample_index = request_index % len(samples)
        body = samples[sample_index : sample_index + 1].astype("<f4").tobytes()
        started = time.perf_counter()
        try:
            response = sessions.session.post(
                f"{url}/api/predict/",
                params={"top_k": len(labels)},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=load.timeout_seconds,
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
                result.timeouts.append(
                    f"request {request_index}: no answer in {load.timeout_seconds} s"
                )
            progress.advance()
            return
        except (requests.RequestException, RuntimeError, ValueError, KeyError) as error:
            with lock:
                result.failures.append(f"request {request_index}: {error}")
            progress.advance()
            return
        live = {entry["label"]: entry[expected.value_key] for entry in answer["top_k"]}
        parity = expected.probabilities[sample_index]
        expected_label = labels[int(np.argmax(parity))]
        difference = max(abs(live.get(name, -1.0) - parity[i]) for i, name in enumerate(labels))
        with lock:
            result.latencies_ms.append(elapsed_ms)
            if served_sha256 != expected.model_sha256:
                result.wrong_answers.append(
                    f"sample {sample_index}: served by model {served_sha256[:12]}, "
                    f"not the candidate {expected.model_sha256[:12]}"
                )
            elif answer["label"] != expected_label or difference > load.tolerance:
                result.wrong_answers.append(
                    f"sample {sample_index}: {answer['label']} (parity: {expected_label}), "
                    f"max |dp| {difference:.2e}"
                )
        progress.advance()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=load.concurrency) as pool:
        list(pool.map(one_request, range(load.requests)))
    result.wall_seconds = time.perf_counter() - started
    return result
