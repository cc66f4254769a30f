"""Helpers for the cgroup tests: children that take memory, stand-ins for sudo and systemd,
and the clean-up every test's groups and children go through."""

import contextlib
import os
import sys
from pathlib import Path

import psutil

from pipeline import cgroups
from pipeline.cgroups import (
    CgroupDirGroup,
    resource_limit,
)

ENFORCING = ("cgroup-v1", "cgroup-v2", "systemd-run")

# Stand-ins that behave as passwordless sudo and as systemd do (scope: own cgroup with its
# MemoryMax and CPUQuota, the command exec'd inside it, the cgroup removed once empty), on this
# machine's own memory hierarchy (v1 or v2); a v1 CPU quota goes to a file-level stand-in tree.
FAKE_SUDO = '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n'
FAKE_SYSTEMD_RUN = """#!/bin/sh
while [ "$1" != -- ]; do
  case "$1" in
    --unit=*) scope="$FAKE_SYSTEMD_PARENT/${1#--unit=}.scope" ;;
    --property=MemoryMax=*) limit="${1#--property=MemoryMax=}" ;;
    --property=MemoryAccounting=yes) accounting=yes ;;
    --property=CPUQuota=*) percent="${1#--property=CPUQuota=}"; quota=$((${percent%\\%} * 1000)) ;;
  esac
  shift
done
shift
# Without memory accounting systemd makes the scope no memory cgroup to count it in.
[ -n "$limit$accounting" ] || { echo "no memory accounting for $scope" >&2; exit 1; }
mkdir "$scope" || exit 1
if [ -z "$limit" ]; then :
elif [ -e "$scope/memory.max" ]; then echo "$limit" > "$scope/memory.max"
else echo "$limit" > "$scope/memory.limit_in_bytes"; fi || exit 1
if [ -n "$quota" ] && [ -e "$scope/cpu.max" ]; then echo "$quota 100000" > "$scope/cpu.max"
elif [ -n "$quota" ]; then
  cpu="$FAKE_CPU_ROOT${scope#$FAKE_SYSTEMD_ROOT}"
  mkdir -p "$cpu" && echo "$quota" > "$cpu/cpu.cfs_quota_us"
fi
echo $$ > "$scope/cgroup.procs"
sh -c 'echo $$ > "$0/cgroup.procs"; for i in $(seq 600); do rmdir "$1" && exit; sleep 0.1; done' \\
  "$FAKE_SYSTEMD_PARENT" "$scope" 2>/dev/null &
exec "$@"
"""
FAKE_SYSTEMCTL = """#!/bin/sh
for unit; do :; done
[ -d "$FAKE_SYSTEMD_PARENT/$unit" ] && echo "${FAKE_SYSTEMD_PARENT#$FAKE_SYSTEMD_ROOT}/$unit"
exit 0
"""


def allocate(megabytes: int, marker: str, hold_seconds: float = 0.3) -> list[str]:
    """argv of a Python child that touches `megabytes` of memory, then holds it."""
    code = f"b = bytearray({megabytes} * 2**20); import time; time.sleep({hold_seconds})"
    return [sys.executable, "-c", code, marker]


def processes_marked(marker: str) -> list[psutil.Process]:
    """Live processes anywhere on the machine whose command line carries `marker`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(marker in a for a in cmdline):
            found.append(process)
    return found


def is_live(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def fake_tools(bin_dir: Path, **scripts: str) -> str:
    """Write executable stand-ins into `bin_dir`; a PATH that finds them first."""
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        path = bin_dir / name.replace("_", "-")
        path.write_text(text)
        path.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def open_limits(marker: str, monkeypatch):
    """The body of the `cgroup_limit` fixture (tests/conftest.py): yields resource_limit() with a
    short grace, then kills and removes every group and child the test left, and fails."""
    monkeypatch.delenv(cgroups.BACKEND_ENV, raising=False)  # each test picks its own
    groups = []

    @contextlib.contextmanager
    def open_limit(limit_mb: float, **kwargs):
        kwargs.setdefault("term_grace_seconds", 1.0)
        with resource_limit(limit_mb, name_prefix=marker, **kwargs) as group:
            groups.append(group)
            yield group

    yield open_limit
    stragglers = processes_marked(marker)
    # Memory and CPU groups alike, in whichever tree this machine's backend made them.
    leftovers = cgroups.existing_groups(marker) + [
        path
        for group in groups
        if isinstance(group, CgroupDirGroup)
        for path in group.directory.parent.glob(f"{marker}-*")
    ]
    # Clean up before failing, so one broken test cannot break the next.
    for process in stragglers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(stragglers, timeout=5)
    for path in sorted(set(leftovers)):
        with contextlib.suppress(OSError):
            path.rmdir()
    assert not stragglers and not leftovers
