"""Run processes inside a real memory limit and CPU share, and read the kernel's own figures.

The OOM killer acts on a memory cgroup's own accounting (anon + page cache), which is neither
a process's RSS nor the sum of RSS; and a host that sells "0.1 CPU" throttles a CFS quota of
10 ms per 100 ms period. Render's kernel does both. Backends, one module each:

- `cgroup-v1` (v1.py): a child of this process's own memory group, plus a sibling CPU group
  under /sys/fs/cgroup/cpu (these machines, as root);
- `cgroup-v2` (v2.py): a child, or a sibling, of this process's own group in a delegated v2
  subtree, with memory.max and cpu.max;
- `systemd-run` (systemd.py): a transient scope with MemoryMax and CPUQuota, through the system
  manager as root or with passwordless sudo (GitHub's runners), else the user's own manager;
- `none` (sampled.py): no limit can be set here: processes run unconfined, the peak is the
  process tree's RSS sampled with psutil, nothing is enforced, and a warning says so.

They are tried in that order, except that where systemd is PID 1 systemd-run goes first: systemd
must be the only writer of its tree. A backend counts only once a real process has joined it.
Force one with `backend=` or $MEMORY_CGROUP_BACKEND. Every group is emptied and removed on exit,
on success, failure and Ctrl-C alike; every wait has a deadline. A group may limit memory alone
(memory_limit), the CPU alone (cpu_limit) or both (resource_limit); processes start in it with
popen(), or a running one joins it with join(pid).
"""

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.cgroups import common
from pipeline.cgroups.common import (
    EMPTY_DEADLINE_SECONDS,
    TERM_GRACE_SECONDS,
    MemoryGroupError,
    own_group,
    v2_mount,
)
from pipeline.cgroups.group import CgroupDirGroup, ResourceGroup
from pipeline.cgroups.page_cache import (
    distribution_libraries,
    evict_from_page_cache,
    workers_that_fit,
)
from pipeline.cgroups.sampled import SampledGroup
from pipeline.cgroups.systemd import SystemdScopeGroup
from pipeline.cgroups.v1 import CgroupV1Group
from pipeline.cgroups.v2 import CgroupV2Group

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "CgroupDirGroup",
    "CgroupV1Group",
    "CgroupV2Group",
    "MemoryGroupError",
    "ResourceGroup",
    "SampledGroup",
    "SystemdScopeGroup",
    "cpu_limit",
    "distribution_libraries",
    "evict_from_page_cache",
    "existing_groups",
    "memory_limit",
    "open_group",
    "resource_limit",
    "workers_that_fit",
]

BACKEND_ENV = "MEMORY_CGROUP_BACKEND"
FACTORIES = {
    "cgroup-v1": CgroupV1Group.create,
    "cgroup-v2": CgroupV2Group.create,
    "systemd-run": SystemdScopeGroup.create,
    "none": SampledGroup,
}
BACKENDS = tuple(FACTORIES)
EXPECTED_FAILURES = (MemoryGroupError, OSError, subprocess.SubprocessError)

logger = logging.getLogger(__name__)


def _prove_joinable(group: ResourceGroup) -> None:
    """A group counts only once a real process has joined it and run."""
    probe = group.popen(["true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, error = probe.communicate(timeout=EMPTY_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        probe.kill()
        _, error = probe.communicate()
    group.processes.remove(probe)
    if probe.returncode != 0:
        raise MemoryGroupError(f"a process could not join {group.name}: {error.decode().strip()}")


def _candidates(backend: str | None) -> list[str]:
    if backend:
        if backend not in FACTORIES:
            raise MemoryGroupError(f"backend {backend!r} is unknown; use one of {BACKENDS}")
        return [backend]
    if common.SYSTEMD_RUNTIME_DIR.is_dir():  # systemd must be the only writer of its tree
        return ["systemd-run", "cgroup-v1", "cgroup-v2", "none"]
    return list(BACKENDS)


def open_group(
    limit_mb: float | None,
    name_prefix: str,
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
    cpu_share: float | None = None,
) -> ResourceGroup:
    """The best group this machine allows, or exactly `backend`; the caller closes it."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name_prefix):
        raise ValueError(f"name_prefix {name_prefix!r} may hold only letters, digits, '_.-'")
    name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
    reasons = []
    for candidate in _candidates(backend):
        try:
            group = FACTORIES[candidate](limit_mb, name, term_grace_seconds, cpu_share=cpu_share)
        except EXPECTED_FAILURES as error:
            reasons.append(f"{candidate}: {error}")
            continue
        try:
            if group.enforced:
                _prove_joinable(group)
        except BaseException as error:  # Ctrl-C included: never leave a half-made group behind
            with contextlib.suppress(*EXPECTED_FAILURES):
                group.close()
            if not isinstance(error, EXPECTED_FAILURES):
                raise
            reasons.append(f"{candidate}: {error}")
            continue
        if limit_mb is not None and not group.enforced:
            logger.warning(
                "WARNING: the %s MB memory limit is NOT enforced (%s); processes run unconfined "
                "and their peak is sampled RSS, not what a kernel would count",
                limit_mb,
                "; ".join(reasons) or "backend 'none' was asked for",
            )
        if cpu_share is not None and not group.cpu_enforced:
            logger.warning(
                "WARNING: the %s CPU share is NOT enforced (%s); processes get whole CPUs",
                cpu_share,
                group.cpu_note,
            )
        return group
    raise MemoryGroupError("; ".join(reasons))


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up, so a second one cannot leave the group half-removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def resource_limit(
    limit_mb: float | None,
    cpu_share: float | None = None,
    name_prefix: str = "memlimit",
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
) -> Iterator[ResourceGroup]:
    """A fresh group of `limit_mb` (and `cpu_share` CPUs), emptied and removed however it ends.

    Args:
        limit_mb: None leaves memory unlimited; the group still counts it (peak_mb() etc.).
        cpu_share: CPUs per CFS period (0.1 is Render free's); None leaves the CPU unlimited.
        backend: one of BACKENDS; default $MEMORY_CGROUP_BACKEND, else the best available.
        term_grace_seconds: how long processes get between SIGTERM and SIGKILL on exit.
    """
    group = open_group(
        limit_mb,
        name_prefix,
        backend or os.environ.get(BACKEND_ENV) or None,
        term_grace_seconds,
        cpu_share=cpu_share,
    )
    try:
        yield group
    finally:
        with _sigint_held():
            group.close()


def memory_limit(
    limit_mb: float,
    name_prefix: str = "memlimit",
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
):
    """resource_limit() with the memory limit alone (the benchmark's whole-CPU measurements)."""
    return resource_limit(limit_mb, None, name_prefix, backend, term_grace_seconds)


def cpu_limit(
    cpu_share: float | None,
    name_prefix: str = "cpulimit",
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
):
    """resource_limit() with the CPU share alone (benchmarks and the CPU-quota tests).

    None limits nothing, so a caller measures unthrottled and throttled runs alike.
    """
    return resource_limit(None, cpu_share, name_prefix, backend, term_grace_seconds)


def existing_groups(name_prefix: str) -> list[Path]:
    """Groups whose name starts with `name_prefix-` that still exist, in any backend's tree."""
    parents = []
    for root, controller in ((common.V1_MEMORY_ROOT, "memory"), (common.V1_CPU_ROOT, "cpu")):
        own = own_group(controller) if root.is_dir() else None
        if own is not None:
            parents.append(root / own.lstrip("/"))
    mount, own = v2_mount(), own_group("")
    if mount is not None and own is not None:
        parents += [mount / own.lstrip("/"), (mount / own.lstrip("/")).parent]
    found = set()
    for parent in parents:
        if parent.is_dir():
            found.update(parent.glob(f"{name_prefix}-*"))
            # systemd puts a scope under a slice: look one level down as well.
            found.update(parent.glob(f"*/{name_prefix}-*.scope"))
    return sorted(found)
