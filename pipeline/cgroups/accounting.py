"""What a group spent on the CPU and how long it waited for one, from the kernel's own files.

A process's wall time on a shared host moves with the host's other work; the CPU-seconds the
kernel charges to the group (v1 cpuacct.usage, v2 cpu.stat usage_usec) move far less, and the
group's CPU pressure (PSI `some`, v2 cpu.pressure) says how long it waited for a CPU.
"""

import contextlib
from pathlib import Path

import psutil

from pipeline.cgroups.common import pressure_seconds, usage_seconds


class CpuAccounting:
    """CPU accounting of a group; a backend sets the files where the kernel keeps them."""

    accounting_file: Path | None = None
    pressure_file: Path | None = None

    def pids(self) -> list[int]:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU time (user + system) that the group's live processes have used so far."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    def cpu_usage_seconds(self) -> float:
        """CPU-seconds the group has used: the kernel's accounting, or its live processes'."""
        if self.accounting_file is not None:
            used = usage_seconds(self.accounting_file)
            if used is not None:
                return used
        return self.cpu_seconds()

    @property
    def cpu_accounting(self) -> str:
        """Where cpu_usage_seconds() comes from, for the verdict."""
        return self.accounting_file.name if self.accounting_file else "process times (psutil)"

    def cpu_wait_seconds(self) -> float | None:
        """Seconds in which a task of the group waited for a CPU (PSI), None where unknown."""
        return None if self.pressure_file is None else pressure_seconds(self.pressure_file)

    def prioritise_cpu(self) -> bool:
        """Give the group a high CPU weight (before its first process); whether the kernel can."""
        return False
