"""One run of the real service under the plan's limits: what the kernel and the load showed.

Phases, each bounded: cold start (process start to the first 200 on /api/health/), the typical
load at gate.concurrency with a health probe beside it, then the worst-case request mix at the
service's full concurrency with the probe still running. The group's memory is sampled all
along; the service log is read before the group is stopped, so its last lines are the
service's own and not its answer to our SIGTERM.
"""

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pipeline.cgroups import evict_from_page_cache, resource_limit
from pipeline.gate.interference import Reading, interference
from pipeline.gate.load import HealthProbe, LoadResult, drive_load
from pipeline.gate.render_service import (
    RenderWebService,
    ServiceLimits,
    free_port,
    lite_runtime_libraries,
)
from pipeline.gate.watch import (
    GateFailure,
    MemorySampler,
    process_tree_figures,
    settled_process_tree_figures,
    wait_until_healthy,
)
from pipeline.gate.worst_case import HostileResult, drive_hostile, hostile_kinds

LOG_TAIL_LINES = 15


@dataclass
class ServiceRun:
    """What one run of the service under the limits showed: the kernel's figures and the load's."""

    backend: str = "none"
    enforced: bool = False
    cpu_backend: str = "none"
    cpu_enforced: bool = False
    cpu_note: str = ""
    limits: ServiceLimits | None = None
    cold_start_seconds: float | None = None
    cold_start_cpu_seconds: float | None = None
    cpu_accounting: str = ""
    prioritised: bool = False
    phases: dict[str, dict] = field(default_factory=dict)  # interference per timing phase
    load: LoadResult | None = None
    cpu_seconds_per_request: float | None = None
    health_latencies_s: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    hostile: HostileResult | None = None
    worst_case_concurrency: int = 0
    workers_before: list[int] = field(default_factory=list)
    workers_after: list[int] = field(default_factory=list)
    master_rss_mb: float = 0.0
    worker_uss_mb: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0  # after the typical load
    worst_case_memory_mb: float | None = None  # after the worst-case mix too
    usage_after_load_mb: float = 0.0
    failcnt: int = 0
    failcnt_before_worst_case: int = 0
    oom_kills: int = 0
    throttled_periods: int = 0
    throttled_seconds: float = 0.0
    memory_series: tuple[list[float], list[float]] = ([], [])
    failure: str | None = None
    service_log_tail: list[str] = field(default_factory=list)
    # Workers gunicorn's arbiter killed for a missed heartbeat (--timeout) under the quota.
    heartbeat_timeouts: list[int] = field(default_factory=list)


def service_environment(render: RenderWebService, settings: dict, port: int, model_dir: Path):
    """The service's environment: the caller's, render.yaml's envVars, the gate's, experiments'."""
    # The service runs from this environment's own bin/ (gunicorn), as `make demo` has it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **render.env, "PATH": path, "PORT": str(port)}
    env["MODEL_DIR"] = str(model_dir)
    env.update({key: str(value) for key, value in (settings.get("service_env") or {}).items()})
    return env


def observe_service(
    render: RenderWebService, settings: dict, plan: dict, expected, model_dir: Path
) -> ServiceRun:
    """Start the service with render.yaml's command inside the plan's limits, load it, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_environment(render, settings, port, model_dir)
    # The bundle and the runtime's libraries are warm in the page cache from convert, parity
    # or an earlier gate; on Render the service is the first to read them, and the kernel
    # charges a page to the first reader's group. (numpy's libraries stay cached: this process
    # maps them itself, and a mapped page cannot be evicted.)
    evict_from_page_cache(Path(env["MODEL_DIR"]), *lite_runtime_libraries())
    run = ServiceRun(limits=ServiceLimits.of(render.start_command, env))
    with tempfile.TemporaryDirectory(prefix="gate-") as log_dir:
        log_path = Path(log_dir) / "service.log"
        with (
            resource_limit(plan["memory_mb"], plan["cpu_share"], name_prefix="gate") as group,
            open(log_path, "wb") as service_log,
        ):
            run.backend, run.enforced = group.backend, group.enforced
            run.cpu_backend, run.cpu_enforced = group.cpu_backend, group.cpu_enforced
            run.cpu_note = group.cpu_note
            run.prioritised, run.cpu_accounting = group.prioritise_cpu(), group.cpu_accounting
            started = time.perf_counter()
            sampler = MemorySampler(group, started)
            process = render.start_in(group, env, service_log)
            try:
                _load_the_service(run, group, process, url, settings, expected, started)
            except GateFailure as failure:
                run.failure = str(failure)
            except psutil.Error as error:  # the master died between two looks at its tree
                run.failure = f"the service's processes vanished while measured ({error})"
            finally:
                sampler.stop()
                service_log.flush()
                # Before the group is stopped: the tail is what the service said, not its
                # answer to our SIGTERM.
                run.service_log_tail = log_tail(log_path)
                run.heartbeat_timeouts = heartbeat_timeouts(log_path)
            run.peak_memory_mb = run.peak_memory_mb or round(group.peak_mb(), 1)
            run.usage_after_load_mb = round(group.usage_mb(), 1)
            run.failcnt, run.oom_kills = group.failcnt(), group.oom_kills()
            run.throttled_periods, run.throttled_seconds = group.cpu_throttling()
            run.memory_series = (sampler.seconds, sampler.usage_mb)
    return run


def checked_load(
    url: str,
    settings: dict,
    expected,
    *,
    requests_total: int | None = None,
    concurrency: int | None = None,
    label: str = "gate load",
) -> LoadResult:
    """The gate's load of held-out predictions, each answer checked against parity's: of
    gate.requests over gate.concurrency clients unless told otherwise."""
    return drive_load(
        url,
        expected.samples,
        expected.probabilities,
        expected.labels,
        model_sha256=expected.model_sha256,
        value_key=expected.value_key,
        requests_total=requests_total or settings["requests"],
        concurrency=concurrency or settings["concurrency"],
        timeout_seconds=settings["request_timeout_seconds"],
        tolerance=settings["max_probability_diff"],
        label=label,
    )


def worst_case_concurrency(limits: ServiceLimits, settings: dict) -> int:
    """The service's full concurrency, at least gate.concurrency, at most the cap in params
    (an async worker takes 1000 connections; 1000 bodies of 8 MiB would swamp the client)."""
    wanted = max(limits.concurrency, settings["concurrency"])
    return min(settings["worst_case_max_concurrency"], wanted)


# gunicorn's own alarms (a worker timed out, was killed, exited) and tracebacks: when a worker
# was replaced, why is usually far above the last lines.
ALERT_MARKERS = ("[CRITICAL]", "[ERROR]", "[WARNING]", "Traceback", "SIGKILL", "Killed")
LOG_ALERT_LINES = 10


def log_tail(log_path: Path) -> list[str]:
    """The service's last lines, after its last alarms (if they are not among them)."""
    lines = log_path.read_text(errors="replace").splitlines()
    tail = lines[-LOG_TAIL_LINES:]
    alerts = [line for line in lines[:-LOG_TAIL_LINES] if any(m in line for m in ALERT_MARKERS)]
    return [*alerts[-LOG_ALERT_LINES:], *(["..."] if alerts else []), *tail]


HEARTBEAT_TIMEOUT = re.compile(r"WORKER TIMEOUT \(pid:(\d+)\)")


def heartbeat_timeouts(log_path: Path) -> list[int]:
    """PIDs of the workers gunicorn's arbiter killed because they missed its --timeout."""
    text = log_path.read_text(errors="replace")
    return [int(pid) for pid in HEARTBEAT_TIMEOUT.findall(text)]


def _load_the_service(run: ServiceRun, group, process, url, settings, expected, started):
    """Cold start, typical load, worst-case mix, with the health probe beside both loads."""
    bound = settings["max_phase_wait_share"]
    start_reading = Reading.now(group)
    run.cold_start_seconds = wait_until_healthy(
        url, process, settings["cold_start_deadline_seconds"], started
    )
    run.cold_start_cpu_seconds = group.cpu_usage_seconds()
    run.phases["cold start"] = interference(start_reading, Reading.now(group), bound)
    run.master_rss_mb, run.workers_before, _ = settled_process_tree_figures(process.pid)
    probe_settings = (
        settings["health_probe_interval_seconds"],
        settings["health_probe_timeout_seconds"],
    )
    cpu_before, load_reading = group.cpu_usage_seconds(), Reading.now(group)
    with HealthProbe(url, *probe_settings) as typical_probe:
        run.load = checked_load(url, settings, expected)
    run.phases["typical load"] = interference(load_reading, Reading.now(group), bound)
    answered = len(run.load.latencies_ms)
    if answered:
        run.cpu_seconds_per_request = (group.cpu_usage_seconds() - cpu_before) / answered
    run.peak_memory_mb = round(group.peak_mb(), 1)
    run.failcnt_before_worst_case = group.failcnt()
    if process.poll() is None:
        _, run.workers_after, run.worker_uss_mb = process_tree_figures(process.pid)
    mix = hostile_kinds(expected.samples, run.limits)
    run.worst_case_concurrency = worst_case_concurrency(run.limits, settings)
    with HealthProbe(url, *probe_settings) as hostile_probe:
        run.hostile = drive_hostile(
            url,
            mix,
            concurrency=run.worst_case_concurrency,
            timeout_seconds=settings["worst_case_timeout_seconds"],
        )
    run.worst_case_memory_mb = round(group.peak_mb(), 1)
    run.health_latencies_s = typical_probe.latencies_s + hostile_probe.latencies_s
    run.health_failures = typical_probe.failures + hostile_probe.failures
    if process.poll() is None:
        # A worker that died in the worst case is a worker replaced, too.
        _, run.workers_after, _ = process_tree_figures(process.pid)
    else:
        run.workers_after = []
