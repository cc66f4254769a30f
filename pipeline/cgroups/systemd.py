"""systemd-run (GitHub's runners, most hosts): a transient scope with MemoryMax and CPUQuota."""

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.cgroups import common
from pipeline.cgroups.common import (
    EMPTY_DEADLINE_SECONDS,
    MB,
    POLL_SECONDS,
    MemoryGroupError,
    throttling,
    wait_until,
    words,
)
from pipeline.cgroups.group import CgroupDirGroup


def _systemd_manager() -> tuple[list[str], list[str]]:
    """How to reach a manager that may set MemoryMax: (sudo prefix, systemctl/systemd-run flags)."""
    if os.geteuid() == 0:
        return [], []
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        if subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10).returncode == 0:
            return ["sudo", "-n"], []
    return [], ["--user"]


def _cpu_quota_set(cpu_dir: Path, version: int) -> bool:
    """Whether the kernel holds a CPU quota for the scope (systemd ignores CPUQuota silently
    where the cpu controller is not available to it)."""
    if version == 2:
        return (words(cpu_dir / "cpu.max") or ["max"])[0] != "max"
    quota = words(cpu_dir / "cpu.cfs_quota_us")
    return bool(quota) and quota[0] != "-1"


class SystemdScopeGroup(CgroupDirGroup):
    """A transient systemd scope with MemoryMax (and CPUQuota), held open by a `holder` process.

    Delegate=yes makes the scope's cgroup ours to write into, and leaves an OOM kill to the
    kernel (OOMPolicy=continue) instead of systemd stopping the whole scope.
    """

    backend = "systemd-run"

    def __init__(self, *args, holder: subprocess.Popen, holder_pid: int, cpu_dir: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.holder, self.holder_pid, self.cpu_dir = holder, holder_pid, cpu_dir

    @classmethod
    def create(
        cls,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        cpu_share: float | None = None,
    ) -> "SystemdScopeGroup":
        if not common.SYSTEMD_RUNTIME_DIR.is_dir() or shutil.which("systemd-run") is None:
            raise MemoryGroupError("systemd is not PID 1 here")
        v2 = (common.CGROUP_ROOT / "cgroup.controllers").exists()
        hierarchy = common.CGROUP_ROOT if v2 else common.V1_MEMORY_ROOT
        sudo, flags = _systemd_manager()
        run = [*sudo, "systemd-run", *flags, "--scope", "--quiet", "--collect", f"--unit={name}"]
        properties = ["Delegate=yes"]
        if limit_mb is None:  # counted but not limited: the scope still gets a memory cgroup
            properties.append("MemoryAccounting=yes")
        else:
            properties += [f"MemoryMax={int(limit_mb * MB)}", "MemorySwapMax=0"]
        if cpu_share is not None:
            properties.append(f"CPUQuota={round(cpu_share * 100)}%")
        # The holder keeps the scope alive until we close its stdin, or until this process dies.
        holder = subprocess.Popen(
            [*run, *(f"--property={p}" for p in properties), "--", "sh", "-c", "read -r _"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        show = ["systemctl", *flags, "show", "--property=ControlGroup", "--value", f"{name}.scope"]
        deadline = time.monotonic() + EMPTY_DEADLINE_SECONDS
        while holder.poll() is None and time.monotonic() < deadline:
            cgroup = subprocess.run(show, capture_output=True, text=True).stdout.strip()
            directory = hierarchy / cgroup.lstrip("/")
            if cgroup and (pids := words(directory / "cgroup.procs")):
                cpu_dir = directory if v2 else common.V1_CPU_ROOT / cgroup.lstrip("/")
                group = cls(
                    limit_mb,
                    name,
                    term_grace_seconds,
                    directory,
                    version=2 if v2 else 1,
                    join_with_sudo=bool(sudo),
                    cpu_share=cpu_share,
                    holder=holder,
                    holder_pid=int(pids[0]),
                    cpu_dir=cpu_dir,
                )
                if cpu_share is not None:
                    if _cpu_quota_set(cpu_dir, group.version):
                        group.cpu_enforced, group.cpu_backend = True, "systemd-run"
                    else:
                        group.cpu_note = f"systemd set no CPU quota on {cpu_dir}"
                return group
            time.sleep(POLL_SECONDS)
        holder.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            holder.wait(timeout=EMPTY_DEADLINE_SECONDS)
        error = holder.stderr.read().decode().strip() if holder.returncode is not None else ""
        holder.stderr.close()
        raise MemoryGroupError(f"systemd-run did not start {name}.scope: {error or 'timed out'}")

    def pids(self) -> list[int]:
        return [pid for pid in super().pids() if pid != self.holder_pid]

    def _read_throttling(self) -> tuple[int, float]:
        return throttling(self.cpu_dir / "cpu.stat")

    def _remove(self) -> None:
        # systemd removes the scope, and its cgroup, once the holder has gone too.
        self.holder.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.holder.wait(timeout=EMPTY_DEADLINE_SECONDS)
        self.holder.stderr.close()
        if not wait_until(lambda: not self.directory.exists(), EMPTY_DEADLINE_SECONDS):
            raise MemoryGroupError(f"systemd did not remove {self.directory}")
