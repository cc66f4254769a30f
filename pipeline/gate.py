"""Stage `gate`: the real service, started as render.yaml starts it, inside a real memory cgroup.

It measures cold start, drives a bounded load checked against parity's own answers, reads the
kernel's peak and OOM kills, notices a worker that died and was replaced, and writes the
verdict for exactly this candidate. Any breach exits non-zero with a one-line reason.
"""

import math
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
import yaml

from pipeline.load_driver import drive_load
from pipeline.memory_cgroup import memory_limit
from pipeline.model_inputs import InputPaths
from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.reports import at_least, at_most, write_json
from service.bundle import MODEL_NAME, sha256_of

POLL_SECONDS = 0.05


class GateFailure(Exception):
    """The service could not be judged (it never became healthy, or exited)."""


def render_start_command(render_yaml_path: Path) -> str:
    """The web service's startCommand, exactly as Render will run it."""
    blueprint = yaml.safe_load(render_yaml_path.read_text(encoding="utf-8"))
    web = [service for service in blueprint["services"] if service.get("type") == "web"]
    if len(web) != 1 or "startCommand" not in web[0]:
        raise GateFailure(
            f"{render_yaml_path} must define exactly one web service with a startCommand"
        )
    return web[0]["startCommand"]


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


def heldout_and_expected(workspace: Workspace, params: dict, candidate_sha256: str):
    """Raw held-out samples and the candidate's own probabilities for them in parity."""
    paths = InputPaths.from_params(params["inputs"], workspace)
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise GateFailure("parity's predictions are for another candidate; run parity again")
        expected = predictions["probabilities"]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"].astype(np.float32)
    return samples, expected


def run_gate(workspace: Workspace, params: dict, candidate_sha256: str) -> dict[str, Any]:
    """Start, measure and stop the service; the report (measures judged, figures kept)."""
    settings = params["gate"]
    manifest_labels = yaml.safe_load((workspace.candidate_dir / "manifest.json").read_text())[
        "labels"
    ]
    samples, expected = heldout_and_expected(workspace, params, candidate_sha256)
    command = render_start_command(workspace.render_yaml_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PORT": str(port), "MODEL_DIR": str(workspace.candidate_dir)}
    env.update({key: str(value) for key, value in (settings.get("service_env") or {}).items()})
    log_dir = Path(tempfile.mkdtemp(prefix="gate-"))
    report: dict[str, Any] = {
        "start_command": command,
        "memory_limit_mb": settings["memory_limit_mb"],
    }
    try:
        with (
            memory_limit(settings["memory_limit_mb"], name_prefix="gate") as group,
            open(log_dir / "service.log", "wb") as service_log,
        ):
            report.update(backend=group.backend, enforced=group.enforced)
            started = time.perf_counter()
            process = group.popen(
                command, env=env, cwd=REPO_ROOT, stdout=service_log, stderr=service_log
            )
            try:
                cold_start = wait_until_healthy(
                    url, process, settings["cold_start_deadline_seconds"], started
                )
                master_mb, workers_before, _ = process_tree_figures(process.pid)
                load = drive_load(
                    url,
                    samples,
                    expected,
                    manifest_labels,
                    requests_total=settings["requests"],
                    concurrency=settings["concurrency"],
                    timeout_seconds=settings["request_timeout_seconds"],
                    tolerance=settings["max_probability_diff"],
                )
                alive = process.poll() is None
                _, workers_after, worker_mb = (
                    process_tree_figures(process.pid) if alive else (0.0, [], [])
                )
            except GateFailure as failure:
                report["reason"] = str(failure)
                cold_start, load, workers_before, workers_after, worker_mb, master_mb = (
                    None,
                    None,
                    [],
                    [],
                    [],
                    0.0,
                )
            report["figures"] = {
                "peak_memory_mb": round(group.peak_mb(), 1),
                "usage_after_load_mb": round(group.usage_mb(), 1),
                "failcnt": group.failcnt(),
                "master_rss_mb": round(master_mb, 1),
                "worker_uss_mb": [round(mb, 1) for mb in worker_mb],
            }
            oom_kills = group.oom_kills()
    except BaseException:
        tail = (log_dir / "service.log").read_text(errors="replace").splitlines()[-15:]
        print("\n".join(["service log (last lines):", *tail]), file=sys.stderr)
        raise
    finally:
        service_log_tail = (log_dir / "service.log").read_text(errors="replace").splitlines()[-15:]
        shutil.rmtree(log_dir, ignore_errors=True)
    figures = report["figures"]
    measures = {
        "peak_memory_mb": at_most(figures["peak_memory_mb"], settings["max_peak_memory_mb"]),
        "oom_kills": at_most(oom_kills, 0),
        "workers_replaced": at_most(
            len(set(workers_after) ^ set(workers_before)) if workers_before else 0, 0
        ),
    }
    if "reason" in report:
        report.update(measures=measures, service_log_tail=service_log_tail)
        return report
    measures.update(
        cold_start_seconds=at_most(round(cold_start, 3), settings["max_cold_start_seconds"]),
        failed_requests=at_most(len(load.failures), 0),
        wrong_answers=at_most(len(load.wrong_answers), 0),
        latency_p95_ms=at_most(round(load.percentile_ms(95), 2), settings["max_latency_p95_ms"]),
        latency_p99_ms=at_most(round(load.percentile_ms(99), 2), settings["max_latency_p99_ms"]),
        throughput_rps=at_least(round(load.throughput_rps, 1), settings["min_throughput_rps"]),
    )
    figures.update(
        latency_p50_ms=round(load.percentile_ms(50), 2),
        requests=settings["requests"],
        concurrency=settings["concurrency"],
        workers=len(workers_before),
        first_failures=load.failures[:3],
        first_wrong_answers=load.wrong_answers[:3],
    )
    report["measures"] = measures
    report["capacity"] = capacity(figures, settings["memory_limit_mb"], len(workers_before))
    return report


def capacity(figures: dict, budget_mb: float, workers: int) -> dict[str, Any]:
    """How many workers of the measured size fit in the budget (for WEB_CONCURRENCY)."""
    if not workers:
        return {}
    per_worker_mb = max(1.0, (figures["peak_memory_mb"] - figures["master_rss_mb"]) / workers)
    fitting = math.floor((budget_mb * 0.9 - figures["master_rss_mb"]) / per_worker_mb)
    return {
        "per_worker_mb": round(per_worker_mb, 1),
        "master_mb": figures["master_rss_mb"],
        "workers_that_fit": max(0, fitting),
        "rule": "floor((0.9 x limit - master RSS) / ((peak - master RSS) / workers))",
    }


def gate(workspace: Workspace) -> None:
    """Run the gate on build/candidate/ and write reports/gate.json."""
    params = load_params(workspace)
    settings = params["gate"]
    candidate_sha256 = sha256_of(workspace.candidate_dir / MODEL_NAME)
    try:
        report = run_gate(workspace, params, candidate_sha256)
    except GateFailure as failure:
        report = {"reason": str(failure), "measures": {}}
    report["candidate_sha256"] = candidate_sha256
    problems = [
        f"{name} {m['value']} (needs {m['rule']} {m['threshold']})"
        for name, m in report["measures"].items()
        if not m["passed"]
    ]
    if report.get("reason"):
        problems.insert(0, report["reason"])
    if not report.get("enforced", False):
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
    write_json(workspace.report_path("gate"), report)
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
