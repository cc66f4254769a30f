"""How much the host's other work got in the way of one timing phase.

Three readings, taken at a phase's start and end: the host's busy share of its CPUs
(/proc/stat), the share of the phase in which some task on the host waited for a CPU
(system-wide PSI, /proc/pressure/cpu), and, where the kernel keeps it per group (cgroup v2
cpu.pressure), the share in which the service itself waited for a CPU beyond its own quota's
throttling: CPU it was owed and did not get. Per-process run-queue waits (/proc/<pid>/schedstat)
read zero on kernels with schedstats off, so they are not used.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.cgroups.common import pressure_seconds
from pipeline.gate.awake import keepers_cpu_ticks, keepers_running

HOST_PRESSURE_FILE = Path("/proc/pressure/cpu")
HOST_STAT_FILE = Path("/proc/stat")


def _host_cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (iowait counts as idle), the gate's own
    keepers (pipeline.gate.awake) left out of busy."""
    try:
        fields = [int(v) for v in HOST_STAT_FILE.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle - keepers_cpu_ticks(), total


@dataclass(frozen=True)
class Reading:
    """The host's and the group's counters at one moment."""

    at: float
    busy_jiffies: int
    total_jiffies: int
    host_wait_s: float | None
    service_wait_s: float | None
    throttled_s: float
    cpus_kept_awake: int = 0

    @classmethod
    def now(cls, group) -> "Reading":
        busy, total = _host_cpu_jiffies()
        keepers = keepers_running()
        return cls(
            at=time.perf_counter(),
            busy_jiffies=busy,
            total_jiffies=total,
            # Host-wide PSI counts a keeper waiting while the service runs: not the host's.
            host_wait_s=None if keepers else pressure_seconds(HOST_PRESSURE_FILE),
            service_wait_s=group.cpu_wait_seconds() if group is not None else None,
            throttled_s=group.cpu_throttling()[1] if group is not None else 0.0,
            cpus_kept_awake=keepers,
        )


def _share(part: float | None, whole: float) -> float | None:
    return None if part is None or whole <= 0 else round(min(1.0, max(0.0, part / whole)), 3)


def interference(start: Reading, end: Reading, max_wait_share: float) -> dict:
    """The phase's interference figures, and whether the service's wait for CPU passed the bound.

    The service's own wait (group PSI) is the judge where the kernel has it; elsewhere the
    host-wide PSI share stands in for it, and `measured_for` says which.
    """
    wall = end.at - start.at
    total = end.total_jiffies - start.total_jiffies
    host_busy = _share(end.busy_jiffies - start.busy_jiffies, total) if total else None
    host_wait = None
    if start.host_wait_s is not None and end.host_wait_s is not None:
        host_wait = _share(end.host_wait_s - start.host_wait_s, wall)
    service_wait = None
    if start.service_wait_s is not None and end.service_wait_s is not None:
        # PSI counts a throttled group's tasks as waiting: that wait is the plan's, not the host's.
        owed = (end.service_wait_s - start.service_wait_s) - (end.throttled_s - start.throttled_s)
        service_wait = _share(max(0.0, owed), wall)
    wait, measured_for = (
        (service_wait, "service") if service_wait is not None else (host_wait, "host")
    )
    figures = {
        "wall_seconds": round(wall, 3),
        "host_busy_share": host_busy,
        "host_cpu_wait_share": host_wait,
        "service_cpu_wait_share": service_wait,
        "measured_for": measured_for,
        "noisy": wait is not None and wait > max_wait_share,
    }
    if end.cpus_kept_awake:
        figures["cpus_kept_awake"] = end.cpus_kept_awake
    return figures


def in_words(phase: str, figures: dict) -> str:
    """One sentence naming the host's interference in a noisy phase."""
    percent = figures["service_cpu_wait_share"]
    if figures["measured_for"] == "service":
        return (
            f"the host was busy during {phase}: the service waited {percent * 100:.0f}% of the "
            "phase for CPU it was owed"
        )
    return (
        f"the host was busy during {phase}: tasks on it waited for a CPU "
        f"{(figures['host_cpu_wait_share'] or 0) * 100:.0f}% of the phase (host-wide PSI; this "
        "kernel keeps no per-service figure)"
    )
