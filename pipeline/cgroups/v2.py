"""cgroup v2 with a delegated subtree: one directory holds memory.max and cpu.max."""

import os

from pipeline.cgroups.common import (
    CFS_PERIOD_US,
    MB,
    MemoryGroupError,
    cpu_quota_us,
    make_group_dir,
    own_group,
    throttling,
    v2_mount,
    words,
)
from pipeline.cgroups.group import CgroupDirGroup


class CgroupV2Group(CgroupDirGroup):
    backend = "cgroup-v2"

    @classmethod
    def create(
        cls,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        cpu_share: float | None = None,
    ) -> "CgroupV2Group":
        mount, own = v2_mount(), own_group("")
        if mount is None or own is None:
            raise MemoryGroupError("no cgroup v2 hierarchy is mounted")
        own_dir = mount / own.lstrip("/")
        # A group with processes cannot have children with controllers ("no internal
        # processes"), so a delegatee that moved itself into a leaf creates siblings instead.
        parents = [own_dir] if own_dir == mount else [own_dir, own_dir.parent]
        usable = [
            parent
            for parent in parents
            if "memory" in words(parent / "cgroup.subtree_control") and os.access(parent, os.W_OK)
        ]
        if not usable:
            raise MemoryGroupError(
                f"{own_dir} and its parent do not delegate the memory controller"
            )
        parent = usable[0]
        settings = {}
        if limit_mb is not None:  # else memory.max stays "max": counted, not limited
            settings = {"memory.max": str(int(limit_mb * MB)), "memory.swap.max?": "0"}
        cpu_note = "no CPU share was asked for"
        if cpu_share is not None:
            if "cpu" in words(parent / "cgroup.subtree_control"):
                settings["cpu.max"] = f"{cpu_quota_us(cpu_share)} {CFS_PERIOD_US}"
                cpu_note = ""
            else:
                cpu_note = f"{parent} does not delegate the cpu controller"
        directory = parent / name
        # memory.peak arrived in Linux 5.19.
        make_group_dir(directory, settings, required=("memory.peak", "memory.events"))
        group = cls(limit_mb, name, term_grace_seconds, directory, version=2, cpu_share=cpu_share)
        group.cpu_note = cpu_note
        if "cpu.max" in settings:
            group.cpu_enforced, group.cpu_backend = True, "cgroup-v2"
        return group

    def _read_throttling(self) -> tuple[int, float]:
        return throttling(self.directory / "cpu.stat")
