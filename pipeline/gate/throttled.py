"""The throttled run: the real service under the plan's memory limit and CPU quota.

Phases, each bounded: cold start (process start to the first 200 on /api/health/), the typical
load at gate.concurrency with a health probe beside it, then the worst-case request mix at the
service's full concurrency with the probe still running. The group's memory is sampled all
along. Its wall times are reported beside the judged timings (pipeline.gate.timings), not
judged: a busy host stretches them.
"""

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pipeline.cgroups import ResourceGroup
from pipeline.gate.expected import ExpectedAnswers
from pipeline.gate.health_probe import HealthProbe
from pipeline.gate.host import measured_phase
from pipeline.gate.load import Load, LoadResult, drive_load
from pipeline.gate.render_service import RenderWebService, ServiceLimits
from pipeline.gate.started_service import ColdStart, StartedService, service_in_group
from pipeline.gate.watch import GateFailure, log_tail
from pipeline.gate.worst_case import (
    HostileResult,
    drive_hostile,
    hostile_kinds,
    worst_case_concurrency,
)
from pipeline.params import GateParams

MEMORY_SAMPLE_SECONDS = 0.1
HEARTBEAT_TIMEOUT = re.compile(r"WORKER TIMEOUT \(pid:(\d+)\)")


@dataclass(frozen=True)
class Enforcement:
    """How the kernel bounds the group: each limit's backend and whether it is enforced, how
    its CPU is accounted, and whether the service is first in line for a core."""

    backend: str = "none"
    enforced: bool = False
    cpu_backend: str = "none"
    cpu_enforced: bool = False
    cpu_note: str = ""
    cpu_accounting: str = ""
    prioritised: bool = False

    @classmethod
    def of(cls, group: ResourceGroup, prioritised: bool) -> "Enforcement":
        return cls(
            group.backend,
            group.enforced,
            group.cpu_backend,
            group.cpu_enforced,
            group.cpu_note,
            group.cpu_accounting,
            prioritised,
        )


@dataclass
class Processes:
    """The gunicorn master and its workers, before the load and after it."""

    master_rss_mb: float = 0.0
    workers_before: list[int] = field(default_factory=list)
    workers_after: list[int] = field(default_factory=list)
    worker_uss_mb: list[float] = field(default_factory=list)
    # Workers gunicorn's arbiter killed for a missed heartbeat (--timeout) under the quota.
    heartbeat_timeouts: list[int] = field(default_factory=list)


@dataclass
class GroupMemory:
    """What the kernel counted in the group's memory."""

    peak_mb: float = 0.0  # after the typical load
    worst_case_mb: float | None = None  # after the worst-case mix too
    usage_after_load_mb: float = 0.0
    failcnt: int = 0
    failcnt_before_worst_case: int = 0
    oom_kills: int = 0
    series: tuple[list[float], list[float]] = ([], [])  # seconds, usage in MB


@dataclass
class ServiceRun:
    """What one run of the service under the plan's limits showed."""

    limits: ServiceLimits | None = None
    enforcement: Enforcement = field(default_factory=Enforcement)
    cold_start: ColdStart | None = None
    load: LoadResult | None = None
    cpu_seconds_per_request: float | None = None
    health_latencies_s: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    hostile: HostileResult | None = None
    worst_case_concurrency: int = 0
    processes: Processes = field(default_factory=Processes)
    memory: GroupMemory = field(default_factory=GroupMemory)
    throttled_periods: int = 0
    throttled_seconds: float = 0.0
    phases: dict[str, dict] = field(default_factory=dict)  # interference per timing phase
    failure: str | None = None
    service_log_tail: list[str] = field(default_factory=list)


def observe_service(
    render: RenderWebService, settings: GateParams, expected: ExpectedAnswers, model_dir: Path
) -> ServiceRun:
    """Start the service with render.yaml's command inside the plan's limits, load it, stop it."""
    plan, run = settings.target_plan, ServiceRun()
    with service_in_group(
        render, settings, model_dir, cpu_share=plan.cpu_share, name_prefix="gate"
    ) as service:
        group = service.group
        run.limits = service.launch.limits
        run.enforcement = Enforcement.of(group, service.prioritised)
        sampler = MemorySampler(group, time.perf_counter())
        try:
            _load_the_service(run, service, settings, expected)
        except GateFailure as failure:
            run.failure = str(failure)
        except psutil.Error as error:  # the master died between two looks at its tree
            run.failure = f"the service's processes vanished while measured ({error})"
        finally:
            sampler.stop()
            service.log.flush()
            run.service_log_tail = log_tail(service.log_path)
            run.processes.heartbeat_timeouts = heartbeat_timeouts(service.log_path)
        memory = run.memory
        memory.peak_mb = memory.peak_mb or round(group.peak_mb(), 1)
        memory.usage_after_load_mb = round(group.usage_mb(), 1)
        memory.failcnt, memory.oom_kills = group.failcnt(), group.oom_kills()
        memory.series = (sampler.seconds, sampler.usage_mb)
        run.throttled_periods, run.throttled_seconds = group.cpu_throttling()
    return run


def _load_the_service(
    run: ServiceRun, service: StartedService, settings: GateParams, expected: ExpectedAnswers
) -> None:
    """Cold start, typical load, worst-case mix, with the health probe beside both loads."""
    group, url, bound = service.group, service.url, settings.max_phase_wait_share
    run.cold_start = service.start(settings.cold_start_deadline_seconds, bound)
    run.phases["cold start"] = run.cold_start.phase
    pid, processes = service.process.pid, run.processes
    before = settled_process_tree(pid)
    processes.master_rss_mb, processes.workers_before = before.master_rss_mb, before.workers
    probing = (settings.health_probe_interval_seconds, settings.health_probe_timeout_seconds)
    cpu_before = group.cpu_usage_seconds()
    with measured_phase(group, bound) as phase, HealthProbe(url, *probing) as typical_probe:
        run.load = drive_load(url, expected, Load.of(settings))
    run.phases["typical load"] = phase.figures
    answered = len(run.load.latencies_ms)
    if answered:
        run.cpu_seconds_per_request = (group.cpu_usage_seconds() - cpu_before) / answered
    run.memory.peak_mb = round(group.peak_mb(), 1)
    run.memory.failcnt_before_worst_case = group.failcnt()
    if service.process.poll() is None:
        after = process_tree(pid)
        processes.workers_after, processes.worker_uss_mb = after.workers, after.worker_uss_mb
    mix = hostile_kinds(expected.samples, run.limits)
    run.worst_case_concurrency = worst_case_concurrency(run.limits, settings)
    with HealthProbe(url, *probing) as hostile_probe:
        run.hostile = drive_hostile(
            url,
            mix,
            concurrency=run.worst_case_concurrency,
            timeout_seconds=settings.worst_case_timeout_seconds,
        )
    run.memory.worst_case_mb = round(group.peak_mb(), 1)
    run.health_latencies_s = typical_probe.latencies_s + hostile_probe.latencies_s
    run.health_failures = typical_probe.failures + hostile_probe.failures
    # A worker that died in the worst case is a worker replaced, too.
    alive = service.process.poll() is None
    processes.workers_after = process_tree(pid).workers if alive else []


@dataclass(frozen=True)
class ProcessTree:
    """The gunicorn master's RSS, its worker PIDs and the workers' unique memory, in MB."""

    master_rss_mb: float
    workers: list[int]
    worker_uss_mb: list[float]


def process_tree(root_pid: int) -> ProcessTree:
    """The service's master and workers now (psutil.Error if the master is gone)."""
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
    return ProcessTree(master.memory_info().rss / 2**20, sorted(w.pid for w in workers), worker_mb)


def settled_process_tree(root_pid: int, timeout_seconds: float = 5.0) -> ProcessTree:
    """process_tree once the worker set has stopped changing.

    Health answers as soon as the first worker is up, but gunicorn forks the others with a
    random pause of up to 0.1 s each; a snapshot taken too early would miss them.
    """
    deadline = time.monotonic() + timeout_seconds
    tree = process_tree(root_pid)
    unchanged_polls = 0
    while unchanged_polls < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        latest = process_tree(root_pid)
        unchanged_polls = unchanged_polls + 1 if latest.workers == tree.workers else 0
        tree = latest
    return tree


class MemorySampler:
    """The group's usage every MEMORY_SAMPLE_SECONDS, in a thread, for the report's series."""

    def __init__(self, group: ResourceGroup, started: float) -> None:
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


def heartbeat_timeouts(log_path: Path) -> list[int]:
    """PIDs a service log says gunicorn's arbiter killed because they missed its --timeout."""
    text = log_path.read_text(errors="replace")
    return [int(pid) for pid in HEARTBEAT_TIMEOUT.findall(text)]
