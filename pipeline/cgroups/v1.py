"""cgroup v1 (these machines, as root): a memory group, and a sibling CPU group of one name.

v1 keeps each controller in its own tree, so the CPU share lives in a child of this process's
own group under /sys/fs/cgroup/cpu; a process joins both before exec.
"""

import contextlib
from pathlib import Path

from pipeline.cgroups import common
from pipeline.cgroups.common import (
    CFS_PERIOD_US,
    HIGH_CPU_WEIGHT,
    MB,
    MemoryGroupError,
    cpu_quota_us,
    make_group_dir,
    own_group,
    remove_group_dir,
    throttling,
    v2_mount,
)
from pipeline.cgroups.group import CgroupDirGroup


def _swap_total_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1])
    return 0


class CgroupV1Group(CgroupDirGroup):
    backend = "cgroup-v1"

    def __init__(self, *args, cpu_directory: Path | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cpu_directory = cpu_directory
        self.accounting_dirs: list[Path] = []
        if cpu_directory is not None:
            self.cpu_enforced, self.cpu_backend = True, "cgroup-v1"

    def _add_accounting(self) -> None:
        """Sibling groups that only count: cpuacct (CPU-seconds) and, on a hybrid host, the v2
        tree (its cpu.stat and cpu.pressure need no controller). Each is optional."""
        own = own_group("cpuacct")
        cpuacct = common.V1_CPUACCT_ROOT / (own or "/").lstrip("/") / self.name
        if own is not None and cpuacct.exists():  # cpu and cpuacct mounted together
            self.accounting_file = cpuacct / "cpuacct.usage"
        elif own is not None and (common.V1_CPUACCT_ROOT / "cpuacct.usage").exists():
            with contextlib.suppress(MemoryGroupError):
                make_group_dir(cpuacct, {}, required=("cpuacct.usage",))
                self.accounting_dirs.append(cpuacct)
                self.accounting_file = cpuacct / "cpuacct.usage"
        mount, own_v2 = v2_mount(), own_group("")
        if mount is not None and mount != common.CGROUP_ROOT and own_v2 is not None:
            unified = mount / own_v2.lstrip("/") / self.name
            with contextlib.suppress(MemoryGroupError):
                make_group_dir(unified, {}, required=("cpu.pressure", "cpu.stat"))
                self.accounting_dirs.append(unified)
                self.pressure_file = unified / "cpu.pressure"
                self.accounting_file = self.accounting_file or unified / "cpu.stat"

    def prioritise_cpu(self) -> bool:
        if self.cpu_directory is None:  # a group with no quota still takes a weight
            try:
                self.cpu_directory = self._create_cpu_group(self.name, None)
            except MemoryGroupError:
                return False
        (self.cpu_directory / "cpu.shares").write_text(str(HIGH_CPU_WEIGHT[1]))
        return True

    @classmethod
    def create(
        cls,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        cpu_share: float | None = None,
    ) -> "CgroupV1Group":
        memory_root = common.V1_MEMORY_ROOT
        own = own_group("memory")
        if own is None or not (memory_root / "memory.limit_in_bytes").exists():
            raise MemoryGroupError("no cgroup v1 memory controller is mounted")
        settings = {}
        if limit_mb is not None:  # else the group counts memory but does not limit it
            limit = str(int(limit_mb * MB))
            settings["memory.limit_in_bytes"] = limit
            # No swapping out of trouble; but a memsw limit also stops memory.failcnt counting
            # (measured on Linux 6.18), so it is set only where there is swap to stop.
            if _swap_total_kb() > 0:
                settings["memory.memsw.limit_in_bytes?"] = limit
        directory = memory_root / own.lstrip("/") / name
        make_group_dir(directory, settings, required=())
        cpu_directory, note = None, "no CPU share was asked for"
        if cpu_share is not None:
            try:
                cpu_directory = cls._create_cpu_group(name, cpu_share)
                note = ""
            except MemoryGroupError as error:
                note = str(error)
        group = cls(
            limit_mb,
            name,
            term_grace_seconds,
            directory,
            version=1,
            cpu_share=cpu_share,
            cpu_directory=cpu_directory,
        )
        group.cpu_note = note
        group._add_accounting()
        return group

    @staticmethod
    def _create_cpu_group(name: str, cpu_share: float | None) -> Path:
        cpu_root = common.V1_CPU_ROOT
        own = own_group("cpu")
        if own is None or not (cpu_root / "cpu.cfs_quota_us").exists():
            raise MemoryGroupError("no cgroup v1 cpu controller is mounted")
        directory = cpu_root / own.lstrip("/") / name
        settings = {
            "cpu.cfs_period_us": str(CFS_PERIOD_US),
            "cpu.cfs_quota_us": "-1" if cpu_share is None else str(cpu_quota_us(cpu_share)),
        }
        make_group_dir(directory, settings, required=("cpu.cfs_quota_us",))
        return directory

    def procs_files(self) -> list[Path]:
        files = super().procs_files()
        if self.cpu_directory is not None:
            files.append(self.cpu_directory / "cgroup.procs")
        return files + [directory / "cgroup.procs" for directory in self.accounting_dirs]

    def _read_throttling(self) -> tuple[int, float]:
        if self.cpu_directory is None:
            return 0, 0.0
        return throttling(self.cpu_directory / "cpu.stat")

    def _remove(self) -> None:
        try:
            super()._remove()
        finally:
            for directory in [self.cpu_directory, *self.accounting_dirs]:
                if directory is not None:
                    with contextlib.suppress(FileNotFoundError):
                        remove_group_dir(directory)
