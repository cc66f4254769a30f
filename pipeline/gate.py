"""Stage `gate`: the real service, started as render.yaml starts it, inside a real memory cgroup.

It measures cold start, drives a bounded load checked against parity's own answers, reads the
kernel's peak and OOM kills, notices a worker that died and was replaced, and writes the
verdict for exactly this candidate. Any breach exits non-zero with a one-line reason.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
import yaml

from pipeline.load_driver import LoadResult, drive_load
from pipeline.memory_cgroup import (
    MemoryGroupError,
    distribution_libraries,
    evict_from_page_cache,
    memory_limit,
    workers_that_fit,
)
from pipeline.model_inputs import InputPaths
from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.reports import at_least, at_most, read_json, write_verdict
from service.bundle import MODEL_NAME, sha256_of
from service.runtime import RUNTIMES

POLL_SECONDS = 0.05


class GateFailure(Exception):
    """The service could not be judged (it never became healthy, or exited)."""


@dataclass(frozen=True)
class RenderWebService:
    """What render.yaml tells Render about the web service: how to start it, with what env."""

    start_command: str
    env: dict[str, str]

    @classmethod
    def read(cls, render_yaml_path: Path) -> "RenderWebService":
        blueprint = yaml.safe_load(render_yaml_path.read_text(encoding="utf-8"))
        web = [service for service in blueprint["services"] if service.get("type") == "web"]
        if len(web) != 1 or "startCommand" not in web[0]:
            raise GateFailure(
                f"{render_yaml_path} must define exactly one web service with a startCommand"
            )
        # Only literal values: generateValue, fromDatabase and `sync: false` secrets exist on
        # Render alone. WEB_CONCURRENCY and TFLITE_NUM_THREADS live here, so the gate runs the
        # worker count Render will run rather than whatever the caller's shell happens to set.
        env = {
            str(variable["key"]): str(variable["value"])
            for variable in web[0].get("envVars") or []
            if "key" in variable and "value" in variable
        }
        return cls(start_command=web[0]["startCommand"], env=env)


def lite_runtime_libraries() -> list[Path]:
    """The shared libraries of every installed lite runtime, for evict_from_page_cache."""
    return distribution_libraries(*(name for name, _ in RUNTIMES))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


@dataclass(frozen=True)
class ExpectedAnswers:
    """What the live service must answer: parity's own probabilities, from this candidate."""

    samples: np.ndarray
    probabilities: np.ndarray
    labels: list[str]
    model_sha256: str


def expected_answers(workspace: Workspace, params: dict, candidate_sha256: str) -> ExpectedAnswers:
    """Raw held-out samples and the candidate's own probabilities for them in parity."""
    paths = InputPaths.from_params(params["inputs"], workspace)
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise GateFailure("parity's predictions are for another candidate; run parity again")
        probabilities = predictions["probabilities"]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"].astype(np.float32)
    labels = read_json(workspace.candidate_dir / "manifest.json")["labels"]
    return ExpectedAnswers(samples, probabilities, labels, candidate_sha256)


@dataclass
class ServiceRun:
    """What one run of the service under the limit showed: the kernel's figures and the load's."""

    backend: str = "none"
    enforced: bool = False
    cold_start_seconds: float | None = None
    load: LoadResult | None = None
    workers_before: list[int] = field(default_factory=list)
    workers_after: list[int] = field(default_factory=list)
    master_rss_mb: float = 0.0
    worker_uss_mb: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    usage_after_load_mb: float = 0.0
    failcnt: int = 0
    oom_kills: int = 0
    failure: str | None = None
    service_log_tail: list[str] = field(default_factory=list)


def observe_service(
    workspace: Workspace, render: RenderWebService, settings: dict, expected: ExpectedAnswers
) -> ServiceRun:
    """Start the service with render.yaml's command inside the limit, load it, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The service runs from this environment's own bin/ (gunicorn), as `make demo` has it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # Precedence: the caller's environment, then render.yaml's envVars (as Render sets them),
    # then the port and candidate the gate must use, then gate.service_env for experiments.
    env = {**os.environ, **render.env, "PATH": path, "PORT": str(port)}
    env["MODEL_DIR"] = str(workspace.candidate_dir)
    env.update({key: str(value) for key, value in (settings.get("service_env") or {}).items()})
    # The bundle and the runtime's libraries are warm in the page cache from convert, parity
    # or an earlier gate; on Render the service is the first to read them, and the kernel
    # charges a page to the first reader's group. (numpy's libraries stay cached: this process
    # maps them itself, and a mapped page cannot be evicted.)
    evict_from_page_cache(Path(env["MODEL_DIR"]), *lite_runtime_libraries())
    run = ServiceRun()
    with tempfile.TemporaryDirectory(prefix="gate-") as log_dir:
        log_path = Path(log_dir) / "service.log"
        with (
            memory_limit(settings["memory_limit_mb"], name_prefix="gate") as group,
            open(log_path, "wb") as service_log,
        ):
            run.backend, run.enforced = group.backend, group.enforced
            started = time.perf_counter()
            process = group.popen(
                render.start_command,
                env=env,
                cwd=REPO_ROOT,
                stdout=service_log,
                stderr=subprocess.STDOUT,
            )
            try:
                run.cold_start_seconds = wait_until_healthy(
                    url, process, settings["cold_start_deadline_seconds"], started
                )
                run.master_rss_mb, run.workers_before, _ = settled_process_tree_figures(process.pid)
                run.load = drive_load(
                    url,
                    expected.samples,
                    expected.probabilities,
                    expected.labels,
                    model_sha256=expected.model_sha256,
                    requests_total=settings["requests"],
                    concurrency=settings["concurrency"],
                    timeout_seconds=settings["request_timeout_seconds"],
                    tolerance=settings["max_probability_diff"],
                )
                if process.poll() is None:
                    _, run.workers_after, run.worker_uss_mb = process_tree_figures(process.pid)
            except GateFailure as failure:
                run.failure = str(failure)
            run.peak_memory_mb = round(group.peak_mb(), 1)
            run.usage_after_load_mb = round(group.usage_mb(), 1)
            run.failcnt, run.oom_kills = group.failcnt(), group.oom_kills()
        run.service_log_tail = log_path.read_text(errors="replace").splitlines()[-15:]
    return run


def judge(run: ServiceRun, settings: dict) -> dict[str, dict]:
    """Each gate measure with its value, threshold and outcome."""
    # A worker that died is one whose PID is gone after the load (gunicorn forks a new one).
    replaced = len(set(run.workers_before) - set(run.workers_after))
    measures = {
        "peak_memory_mb": at_most(run.peak_memory_mb, settings["max_peak_memory_mb"]),
        "oom_kills": at_most(run.oom_kills, 0),
        "workers_replaced": at_most(replaced, 0),
    }
    if run.load is None:
        return measures
    return measures | {
        "cold_start_seconds": at_most(
            round(run.cold_start_seconds, 3), settings["max_cold_start_seconds"]
        ),
        "failed_requests": at_most(len(run.load.failures), 0),
        "wrong_answers": at_most(len(run.load.wrong_answers), 0),
        "latency_p95_ms": at_most(
            round(run.load.percentile_ms(95), 2), settings["max_latency_p95_ms"]
        ),
        "latency_p99_ms": at_most(
            round(run.load.percentile_ms(99), 2), settings["max_latency_p99_ms"]
        ),
        "throughput_rps": at_least(
            round(run.load.throughput_rps, 1), settings["min_throughput_rps"]
        ),
    }


def run_report(run: ServiceRun, settings: dict, render: RenderWebService) -> dict[str, Any]:
    """The verdict's body: measures judged, figures kept, capacity planned."""
    figures = {
        "peak_memory_mb": run.peak_memory_mb,
        "usage_after_load_mb": run.usage_after_load_mb,
        "failcnt": run.failcnt,
        "master_rss_mb": round(run.master_rss_mb, 1),
        "worker_uss_mb": [round(mb, 1) for mb in run.worker_uss_mb],
        "workers": len(run.workers_before),
    }
    if run.load is not None:
        figures.update(
            latency_p50_ms=round(run.load.percentile_ms(50), 2),
            requests=settings["requests"],
            concurrency=settings["concurrency"],
            first_failures=run.load.failures[:3],
            first_wrong_answers=run.load.wrong_answers[:3],
        )
    report = {
        "backend": run.backend,
        "enforced": run.enforced,
        "memory_limit_mb": settings["memory_limit_mb"],
        "start_command": render.start_command,
        "render_env": render.env,
        "measures": judge(run, settings),
        "figures": figures,
        "capacity": capacity(figures, settings["memory_limit_mb"], len(run.workers_before)),
    }
    reasons = []
    if run.oom_kills:
        reasons.append(
            f"the kernel OOM-killed {run.oom_kills} process(es) at a peak of "
            f"{run.peak_memory_mb} MB in a {settings['memory_limit_mb']} MB group"
        )
    if run.failure:
        last_line = run.service_log_tail[-1] if run.service_log_tail else "no output"
        reasons.append(f"{run.failure} (service log: {last_line})")
    if reasons:
        report.update(reason="; ".join(reasons), service_log_tail=run.service_log_tail)
    return report


def capacity(figures: dict, budget_mb: float, workers: int) -> dict[str, Any]:
    """How many workers of the measured size fit in the budget (for WEB_CONCURRENCY)."""
    if not workers:
        return {}
    per_worker_mb = max(1.0, (figures["peak_memory_mb"] - figures["master_rss_mb"]) / workers)
    return {
        "per_worker_mb": round(per_worker_mb, 1),
        "master_mb": figures["master_rss_mb"],
        "workers_that_fit": workers_that_fit(per_worker_mb, figures["master_rss_mb"], budget_mb),
        "rule": "floor((0.9 x limit - master RSS) / ((peak - master RSS) / workers))",
    }


def gate(workspace: Workspace) -> None:
    """Run the gate on build/candidate/ and write reports/gate.json."""
    params = load_params(workspace)
    settings = params["gate"]
    candidate_sha256 = sha256_of(workspace.candidate_dir / MODEL_NAME)
    try:
        expected = expected_answers(workspace, params, candidate_sha256)
        render = RenderWebService.read(workspace.render_yaml_path)
        run = observe_service(workspace, render, settings, expected)
        report = run_report(run, settings, render)
    except (GateFailure, MemoryGroupError) as failure:
        report = {"reason": str(failure), "measures": {}}
    report["candidate_sha256"] = candidate_sha256
    problems = [
        f"{name} {m['value']} (needs {m['rule']} {m['threshold']})"
        for name, m in report["measures"].items()
        if not m["passed"]
    ]
    if report.get("reason"):
        problems.insert(0, report["reason"])
    if "enforced" in report and not report["enforced"]:
        print(
            "WARNING: the memory limit was NOT enforced by the kernel on this machine; "
            "figures are the process tree's RSS, not what Render's kernel would count",
            file=sys.stderr,
            flush=True,
        )
        if settings["require_enforced"]:
            problems.append(
                "the memory limit was not enforced by the kernel (gate.require_enforced is on)"
            )
    report["passed"] = not problems
    write_verdict(workspace, "gate", report)
    if problems:
        raise SystemExit("gate failed: " + "; ".join(problems))
    figures, measures = report["figures"], report["measures"]
    print(
        f"gate passed ({report['backend']}, limit {settings['memory_limit_mb']} MB): peak "
        f"{figures['peak_memory_mb']} MB, cold start {measures['cold_start_seconds']['value']} s, "
        f"p95 {measures['latency_p95_ms']['value']} ms, "
        f"{measures['throughput_rps']['value']} req/s; "
        f"{report['capacity']['workers_that_fit']} workers would fit"
    )


if __name__ == "__main__":
    gate(Workspace.from_env())
