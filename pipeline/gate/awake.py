"""CPUs kept from idling while the gate measures what a service's cold start costs.

On a virtual machine a CPU with nothing to run halts, and the hypervisor hands its core to
other work until the guest wants it back. A service that waits (for the disk during its cold
start, for the next request) then resumes on caches that other work has filled, and spends
more CPU for the same work: on one VM the demo's cold start cost less beside two busy
processes than on a quiet host, in most pairs of gate runs. One process per CPU, at the lowest
priority the kernel has (SCHED_IDLE), keeps each CPU running: it runs only while nothing else
wants that CPU, so the service takes the CPU back at once, and its loop touches almost no
memory, so it leaves the caches to the service.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

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
# counts): the host's busy share leaves the keepers out (pipeline.gate.interference).
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
