"""What every backend shares: where the hierarchies are, and how cgroup files are read and made.

The group classes themselves are in group.py. Tests point the roots below at stand-in trees.
"""

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from service.errors import Refusal

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_MEMORY_ROOT = CGROUP_ROOT / "memory"
V1_CPU_ROOT = CGROUP_ROOT / "cpu"
V1_CPUACCT_ROOT = CGROUP_ROOT / "cpuacct"
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")  # present only when systemd is PID 1
TERM_GRACE_SECONDS = 5.0
EMPTY_DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.05
CFS_PERIOD_US = 100_000  # the kernel's default period; Render's fraction of a CPU is per period
MB = 2**20
# A group that must not lose its turn to the host's other work within what it may use: 10x the
# default weight (v1 cpu.shares 1024, v2 cpu.weight 100).
HIGH_CPU_WEIGHT = {1: 10240, 2: 1000}

# Where each cgroup version keeps a figure: (file, key of its `key value` line or None).
FIGURE_FILES = {
    1: {
        "peak": ("memory.max_usage_in_bytes", None),
        "usage": ("memory.usage_in_bytes", None),
        "oom_kills": ("memory.oom_control", "oom_kill"),
        "failcnt": ("memory.failcnt", None),
    },
    2: {
        "peak": ("memory.peak", None),
        "usage": ("memory.current", None),
        "oom_kills": ("memory.events", "oom_kill"),
        "failcnt": ("memory.events", "max"),
    },
}
FIGURES = tuple(FIGURE_FILES[2])


class MemoryGroupError(Refusal):
    """A group could not be created, joined or removed; the message says which and why."""


def cpu_quota_us(share: float) -> int:
    """The CFS quota per CFS_PERIOD_US for `share` CPUs (the kernel's minimum is 1 ms)."""
    if share <= 0:
        raise MemoryGroupError(f"a CPU share must be positive, not {share}")
    return max(1000, round(share * CFS_PERIOD_US))


def read_figure(path: Path, key: str | None) -> int:
    """A cgroup file's number, or the value of its `key value` line (0 where the key is absent)."""
    text = path.read_text()
    if key is None:
        return int(text.split()[0])
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def own_group(controller: str) -> str | None:
    """This process's group path for a v1 controller, or for v2 when `controller` is ''."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):  # v2's line is "0::/path": its list is [""]
            return path
    return None


def v2_mount() -> Path | None:
    """Where the v2 hierarchy is mounted: /sys/fs/cgroup alone, or beside v1 (hybrid)."""
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def is_live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` until it holds or `seconds` have passed; whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def make_group_dir(directory: Path, settings: dict[str, str], required: tuple[str, ...]) -> None:
    """mkdir a cgroup, check the kernel gives it the `required` files, write its settings (a
    name ending in `?` only where the kernel has that file); on failure remove it again."""
    try:
        directory.mkdir()
        missing = [name for name in required if not (directory / name).exists()]
        if missing:
            raise OSError(f"this kernel has no {', '.join(missing)}")
        for name, value in settings.items():
            path = directory / name.rstrip("?")
            if not name.endswith("?") or path.exists():
                path.write_text(value)
    except OSError as error:
        with contextlib.suppress(OSError):
            directory.rmdir()
        raise MemoryGroupError(f"cannot create {directory}: {error}") from None


def remove_group_dir(directory: Path) -> None:
    """rmdir a cgroup once the kernel has let go of its last task (bounded)."""

    def removed() -> bool:
        try:
            directory.rmdir()
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY while the kernel finishes with the last task
            return False
        return True

    if not wait_until(removed, EMPTY_DEADLINE_SECONDS):
        raise MemoryGroupError(f"could not remove {directory}")


def throttling(cpu_stat_path: Path) -> tuple[int, float]:
    """(periods throttled, seconds throttled) from a cpu.stat file (v1 ns, v2 us)."""
    stat = {}
    try:
        lines = cpu_stat_path.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, value = line.partition(" ")
        stat[name] = int(value or 0)
    seconds = stat.get("throttled_usec", 0) / 1e6 or stat.get("throttled_time", 0) / 1e9
    return stat.get("nr_throttled", 0), seconds


def usage_seconds(accounting_file: Path) -> float | None:
    """CPU-seconds a group has used: v1 cpuacct.usage (ns) or v2 cpu.stat usage_usec."""
    try:
        text = accounting_file.read_text()
    except OSError:
        return None
    if accounting_file.name == "cpuacct.usage":
        return int(text.split()[0]) / 1e9
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec":
            return int(value) / 1e6
    return None


def pressure_seconds(pressure_file: Path) -> float | None:
    """Seconds in which some task of the group (or host) waited for a CPU: PSI `some total`."""
    try:
        lines = pressure_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("some "):
            fields = dict(field.split("=", 1) for field in line.split()[1:])
            return int(fields["total"]) / 1e6
    return None
