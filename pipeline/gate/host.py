"""The host beside a timing phase: how much its other work got in the way; CPUs kept awake.

How much the host got in the way: three readings at a phase's start and end. The host's busy
share of its CPUs (/proc/stat), the share of the phase in which some task on the host waited
for a CPU (system-wide PSI, /proc/pressure/cpu), and, where the kernel keeps it per group
(cgroup v2 cpu.pressure), the share in which the service itself waited for a CPU beyond its
own quota's throttling: CPU it was owed and did not get. Per-process run-queue waits
(/proc/<pid>/schedstat) read zero on kernels with schedstats off, so they are not used.

The keepers: on a virtual machine a CPU with nothing to run halts, and the hypervisor hands its
core to other work until the guest wants it back. A service that waits (for the disk during
its cold start) then resumes on caches that other work has filled, and spends more CPU for the
same work, so a quiet host can make a cold start dearer than a busy one. One process per CPU,
at the lowest priority the kernel has (SCHED_IDLE), keeps each CPU running: it runs only while
nothing else wants that CPU, so the service takes the CPU back at once, and its loop touches
almost no memory, so it leaves the caches to the service. Their own CPU is left out of the
host's busy share.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.cgroups.common import pressure_seconds

# The keeper pins itself to its CPU, drops to SCHED_IDLE, says so, and spins until its parent
# is gone (a gate killed with SIGKILL leaves no keeper behind).
KEEPER = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
parent = os.getppid()
print("idle", flush=True)
while os.getppid() == parent:
    pass
"""


# The keepers running now, and the CPU the finished ones spent (clock ticks, as /proc/stat
# counts): the host's busy share leaves the keepers out (below).
_running: list[subprocess.Popen] = []
_spent_ticks = 0


def _cpu_ticks(pid: int) -> int:
    """User and system clock ticks of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def keepers_running() -> int:
    """How many keepers run now."""
    return len(_running)


def keepers_cpu_ticks() -> int:
    """Clock ticks every keeper has spent so far, running or finished."""
    return _spent_ticks + sum(_cpu_ticks(keeper.pid) for keeper in _running)


def keepers_cpu_seconds() -> float:
    return keepers_cpu_ticks() / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpus_kept_awake():
    """One SCHED_IDLE keeper on each CPU this process may use, for the block; yields how many."""
    global _spent_ticks
    keepers = []
    try:
        for cpu in sorted(os.sched_getaffinity(0)):
            keeper = subprocess.Popen(
                [sys.executable, "-c", KEEPER, str(cpu)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            keepers.append(keeper)
            # At the lowest priority before the service starts: Python's own start-up, at the
            # normal one, would otherwise compete with the cold start being measured.
            if keeper.stdout.readline().strip() != "idle":  # it could not: measure without it
                keepers.remove(keeper)
                keeper.kill()
                keeper.wait()
                keeper.stdout.close()
        _running.extend(keepers)
        yield len(keepers)
    finally:
        for keeper in keepers:
            if keeper in _running:
                _spent_ticks += _cpu_ticks(keeper.pid)
                _running.remove(keeper)
            keeper.kill()
            keeper.wait()
            keeper.stdout.close()


HOST_PRESSURE_FILE = Path("/proc/pressure/cpu")
HOST_STAT_FILE = Path("/proc/stat")


def _host_cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (iowait counts as idle), the gate's own
    keepers (above) left out of busy."""
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


@dataclass
class Phase:
    """A timing phase being measured: when it started, and its interference once it ended."""

    started: Reading
    figures: dict = field(default_factory=dict)


@contextlib.contextmanager
def measured_phase(group, max_wait_share: float) -> Iterator[Phase]:
    """The block as one timing phase of `group`: its interference (see `interference`) is in
    the yielded Phase's `figures` once the block ends."""
    phase = Phase(Reading.now(group))
    yield phase
    phase.figures = interference(phase.started, Reading.now(group), max_wait_share)
