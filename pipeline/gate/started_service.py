"""A fresh service started as render.yaml starts it, in a group of the plan's memory.

Where it answers, its log, and its cold start (process start to the first 200 on
/api/health/).

The bundle and the runtime's libraries are evicted from the page cache first: they are warm
from convert, parity or an earlier start, while on Render the service is the first to read
them, and the kernel charges a page to the group of its first reader. (numpy's libraries stay
cached: this process maps them itself, and a mapped page cannot be evicted.) The log is read
before the group is stopped, so its last lines are the service's own and not its answer to our
SIGTERM.
"""

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.cgroups import ResourceGroup, evict_from_page_cache, resource_limit
from pipeline.gate.host import cpus_kept_awake, keepers_cpu_seconds, measured_phase
from pipeline.gate.preflight import lite_runtime_libraries
from pipeline.gate.render_service import Launch, RenderWebService
from pipeline.gate.watch import GateFailure, log_tail, wait_until_healthy
from pipeline.params import GateParams
from pipeline.paths import REPO_ROOT


@dataclass(frozen=True)
class ColdStart:
    """Process start to the first 200 on /api/health/: its wall seconds, the CPU-seconds the
    group spent meanwhile, the host's interference with it (pipeline.gate.host), and the CPU
    the keepers spent meanwhile, if it started with them."""

    seconds: float
    cpu_seconds: float
    phase: dict
    keeper_cpu_seconds: float = 0.0


@dataclass
class StartedService:
    """render.yaml's service in its group: how it is launched, its log; `process` and
    `cold_start` once started."""

    launch: Launch
    group: ResourceGroup
    log_path: Path
    log: BinaryIO
    prioritised: bool  # first in line for a core (pipeline.cgroups: prioritise_cpu)
    process: subprocess.Popen | None = None
    cold_start: ColdStart | None = None

    @property
    def url(self) -> str:
        return self.launch.url

    def start(
        self, deadline_seconds: float, max_wait_share: float, keep_cpus_awake: bool = False
    ) -> ColdStart:
        """Run the start command in the group, from the repository root as Render runs it, and
        wait for its first 200 on /api/health/; GateFailure if it exits first or the deadline
        passes. `keep_cpus_awake`: with a keeper on each CPU while it starts."""
        keepers_before = keepers_cpu_seconds()
        with (
            cpus_kept_awake() if keep_cpus_awake else contextlib.nullcontext(),
            measured_phase(self.group, max_wait_share) as phase,
        ):
            self.process = self.group.popen(
                self.launch.start_command,
                env=self.launch.env,
                cwd=REPO_ROOT,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            seconds = wait_until_healthy(self.url, self.process, deadline_seconds, phase.started.at)
            cpu_seconds = self.group.cpu_usage_seconds()
        keepers = keepers_cpu_seconds() - keepers_before
        self.cold_start = ColdStart(seconds, cpu_seconds, phase.figures, keepers)
        return self.cold_start


@contextlib.contextmanager
def service_in_group(
    render: RenderWebService,
    settings: GateParams,
    model_dir: Path,
    *,
    cpu_share: float | None,
    name_prefix: str,
) -> Iterator[StartedService]:
    """render.yaml's service, ready to start in a fresh group of the plan's memory and a quota
    of `cpu_share` (None: no quota), first in line for a core. The group is stopped and removed
    when the block ends."""
    launch = render.launch(settings, model_dir)
    evict_from_page_cache(Path(launch.env["MODEL_DIR"]), *lite_runtime_libraries())
    memory_mb = settings.target_plan.memory_mb
    with (
        tempfile.TemporaryDirectory(prefix=f"{name_prefix}-") as log_dir,
        resource_limit(memory_mb, cpu_share, name_prefix=name_prefix) as group,
        open(Path(log_dir) / "service.log", "wb") as log,
    ):
        log_path = Path(log_dir) / "service.log"
        yield StartedService(launch, group, log_path, log, group.prioritise_cpu())


@contextlib.contextmanager
def unthrottled_service(
    render: RenderWebService, settings: GateParams, model_dir: Path
) -> Iterator[StartedService]:
    """A fresh service started with no CPU quota; GateFailure, with its log's last line, when it
    does not become healthy. It starts with the host's CPUs kept awake (pipeline.gate.host)
    where the service's own wait for CPU judges the phase: the host-wide one would count the
    keepers."""
    with service_in_group(
        render, settings, model_dir, cpu_share=None, name_prefix="gate-cost"
    ) as service:
        keep_awake = service.group.cpu_wait_seconds() is not None
        try:
            service.start(
                settings.cold_start_deadline_seconds, settings.max_phase_wait_share, keep_awake
            )
        except GateFailure as failure:
            service.log.flush()
            tail = [line for line in log_tail(service.log_path) if line.strip()]
            said = tail[-1] if tail else "none"
            raise GateFailure(f"{failure} (service log: {said})") from None
        yield service
