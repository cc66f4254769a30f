"""Run processes inside a real memory limit and read the kernel's own figures for it.

The OOM killer acts on a memory cgroup's own accounting (anon + page cache), which is
neither a process's RSS nor the sum of RSS; so does Render's. Backends, best first:

- `cgroup-v1`: a child of this process's own memory group (these machines);
- `cgroup-v2`: a child of this process's own group in a delegated v2 tree;
- `systemd-run`: a transient scope with MemoryMax (GitHub's runners);
- `none`: no limit can be set here (a laptop, an unprivileged container): processes run
  unconfined, the peak is the process tree's RSS sampled with psutil, `enforced` is False.

Force one with $MEMORY_CGROUP_BACKEND. Every group is emptied and removed on exit,
on success, failure and Ctrl-C alike; every wait has a deadline.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

BACKEND_ENV = "MEMORY_CGROUP_BACKEND"
BACKENDS = ("cgroup-v1", "cgroup-v2", "systemd-run", "none")
V1_ROOT = Path("/sys/fs/cgroup/memory")
TERM_GRACE_SECONDS = 5.0
EMPTY_DEADLINE_SECONDS = 10.0
MB = 2**20


class MemoryGroupError(Exception):
    """A memory group could not be created or used; the message says which and why."""


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _keyed(path: Path, key: str) -> int:
    """A `key value` line's value from a cgroup file such as memory.events; 0 if absent."""
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _own_group(controller: str) -> str | None:
    """This process's group path for a v1 controller, or for v2 when `controller` is ''."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller and controller in controllers.split(",")) or (
            not controller and not controllers
        ):
            return path
    return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_tree(pids: list[int], children: list[subprocess.Popen] = ()) -> None:
    """SIGTERM, a bounded grace period, then SIGKILL for whatever is left.

    Our own children are reaped through their Popen objects only, so their return codes
    (for instance -9 after an OOM kill) stay readable to the caller.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + TERM_GRACE_SECONDS
        while time.monotonic() < deadline:
            for child in children:
                child.poll()
            if not any(_alive(pid) for pid in pids):
                return
            time.sleep(0.05)


class MemoryGroup:
    """A memory limit that processes can be started in; subclasses say how it is enforced."""

    backend = "none"
    enforced = False

    def __init__(self, limit_mb: float, name: str) -> None:
        self.limit_mb, self.name = limit_mb, name
        self.processes: list[subprocess.Popen] = []

    def popen(self, command: str | list[str], **kwargs) -> subprocess.Popen:
        """Start `command` (a string runs through bash -c) inside the group, in its own session."""
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        process = subprocess.Popen(
            self._wrap(argv), start_new_session=True, preexec_fn=self._enter, **kwargs
        )
        self.processes.append(process)
        return process

    def _wrap(self, argv: list[str]) -> list[str]:
        return argv

    def _enter(self) -> None:
        """Runs in the child between fork and exec: join the group before the first allocation."""

    def pids(self) -> list[int]:
        pids = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(process.pid)
                pids += [root.pid, *(child.pid for child in root.children(recursive=True))]
        return pids

    def peak_mb(self) -> float:
        raise NotImplementedError

    def usage_mb(self) -> float:
        raise NotImplementedError

    def oom_kills(self) -> int:
        return 0

    def failcnt(self) -> int:
        return 0

    def close(self) -> None:
        """Kill every process in the group and remove the group, within bounded waits."""
        _kill_tree(self.pids(), self.processes)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=TERM_GRACE_SECONDS)
        self._remove()

    def _remove(self) -> None:
        pass


class _CgroupDirGroup(MemoryGroup):
    """A group that is a cgroup directory: processes join by writing cgroup.procs."""

    enforced = True

    def __init__(self, limit_mb: float, name: str, directory: Path) -> None:
        super().__init__(limit_mb, name)
        self.directory = directory

    def _enter(self) -> None:
        with open(self.directory / "cgroup.procs", "w") as procs:
            procs.write("0")  # "0" is the writing process itself

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(pid) for pid in (self.directory / "cgroup.procs").read_text().split()]
        return super().pids()

    def _remove(self) -> None:
        deadline = time.monotonic() + EMPTY_DEADLINE_SECONDS
        while self.directory.exists():
            remaining = self.pids()
            if remaining:
                _kill_tree(remaining, self.processes)
            try:
                self.directory.rmdir()
            except OSError as error:
                if time.monotonic() > deadline:
                    raise MemoryGroupError(f"could not remove {self.directory}: {error}") from None
                time.sleep(0.05)


class CgroupV1Group(_CgroupDirGroup):
    backend = "cgroup-v1"

    @classmethod
    def create(cls, limit_mb: float, name: str) -> "CgroupV1Group":
        own = _own_group("memory")
        if own is None or not (V1_ROOT / "memory.limit_in_bytes").exists():
            raise MemoryGroupError("no cgroup v1 memory controller is mounted")
        directory = V1_ROOT / own.lstrip("/") / name
        try:
            directory.mkdir()
            (directory / "memory.limit_in_bytes").write_text(str(int(limit_mb * MB)))
            swap_limit = directory / "memory.memsw.limit_in_bytes"
            if swap_limit.exists():  # no swapping out of trouble: the host has no swap either
                swap_limit.write_text(str(int(limit_mb * MB)))
        except OSError as error:
            with contextlib.suppress(OSError):
                directory.rmdir()
            raise MemoryGroupError(f"cannot create {directory}: {error}") from None
        return cls(limit_mb, name, directory)

    def peak_mb(self) -> float:
        return _read_int(self.directory / "memory.max_usage_in_bytes") / MB

    def usage_mb(self) -> float:
        return _read_int(self.directory / "memory.usage_in_bytes") / MB

    def oom_kills(self) -> int:
        return _keyed(self.directory / "memory.oom_control", "oom_kill")

    def failcnt(self) -> int:
        return _read_int(self.directory / "memory.failcnt")


class CgroupV2Group(_CgroupDirGroup):
    backend = "cgroup-v2"

    @classmethod
    def create(cls, limit_mb: float, name: str, mount: Path | None = None) -> "CgroupV2Group":
        mount = mount or next(
            (
                p
                for p in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
                if (p / "cgroup.controllers").exists()
            ),
            None,
        )
        own = _own_group("")
        if mount is None or own is None:
            raise MemoryGroupError("no cgroup v2 hierarchy is mounted")
        parent = mount / own.lstrip("/")
        if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
            raise MemoryGroupError(f"{parent} does not delegate the memory controller")
        directory = parent / name
        try:
            directory.mkdir()
            (directory / "memory.max").write_text(str(int(limit_mb * MB)))
            (directory / "memory.swap.max").write_text("0")
        except OSError as error:
            with contextlib.suppress(OSError):
                directory.rmdir()
            raise MemoryGroupError(f"cannot create {directory}: {error}") from None
        return cls(limit_mb, name, directory)

    def peak_mb(self) -> float:
        return _read_int(self.directory / "memory.peak") / MB

    def usage_mb(self) -> float:
        return _read_int(self.directory / "memory.current") / MB

    def oom_kills(self) -> int:
        return _keyed(self.directory / "memory.events", "oom_kill")

    def failcnt(self) -> int:
        return _keyed(self.directory / "memory.events", "max")


class SystemdScopeGroup(CgroupV2Group):
    """A transient systemd scope with MemoryMax: how GitHub's runners confine a process."""

    backend = "systemd-run"

    @classmethod
    def create(cls, limit_mb: float, name: str) -> "SystemdScopeGroup":
        if shutil.which("systemd-run") is None or not Path("/run/systemd/system").is_dir():
            raise MemoryGroupError("systemd is not running here")
        group = cls(limit_mb, name, Path())
        group.user = os.geteuid() != 0
        return group

    def _wrap(self, argv: list[str]) -> list[str]:
        unit = f"{self.name}-{len(self.processes)}"
        manager = ["--user"] if self.user else []
        return [
            "systemd-run",
            *manager,
            "--scope",
            "--quiet",
            f"--unit={unit}",
            "-p",
            f"MemoryMax={int(self.limit_mb)}M",
            "-p",
            "MemorySwapMax=0",
            "--",
            *argv,
        ]

    def _enter(self) -> None:
        pass

    def popen(self, command, **kwargs) -> subprocess.Popen:
        process = super().popen(command, **kwargs)
        unit = f"{self.name}-{len(self.processes) - 1}.scope"
        manager = ["--user"] if self.user else []
        deadline = time.monotonic() + EMPTY_DEADLINE_SECONDS
        while time.monotonic() < deadline:  # the scope appears once systemd-run has set it up
            shown = subprocess.run(
                ["systemctl", *manager, "show", "-P", "ControlGroup", unit],
                capture_output=True,
                text=True,
            )
            if shown.stdout.strip():
                self.directory = Path("/sys/fs/cgroup") / shown.stdout.strip().lstrip("/")
                return process
            time.sleep(0.05)
        raise MemoryGroupError(f"systemd did not report the cgroup of {unit}")

    def _remove(self) -> None:
        pass  # systemd removes a transient scope once its last process has gone


class SampledGroup(MemoryGroup):
    """No kernel limit: the peak is the process tree's RSS, sampled at 20 Hz with psutil."""

    def __init__(self, limit_mb: float, name: str) -> None:
        super().__init__(limit_mb, name)
        self._peak_bytes = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _tree_rss(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._peak_bytes = max(self._peak_bytes, self._tree_rss())

    def peak_mb(self) -> float:
        self._peak_bytes = max(self._peak_bytes, self._tree_rss())
        return self._peak_bytes / MB

    def usage_mb(self) -> float:
        return self._tree_rss() / MB

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._stop.set()
            self._sampler.join(timeout=1)


def open_group(limit_mb: float, name_prefix: str, backend: str | None = None) -> MemoryGroup:
    """The best memory group this machine allows, or exactly `backend` when one is named."""
    name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
    factories = {
        "cgroup-v1": CgroupV1Group.create,
        "cgroup-v2": CgroupV2Group.create,
        "systemd-run": SystemdScopeGroup.create,
        "none": SampledGroup,
    }
    if backend and backend not in factories:
        raise MemoryGroupError(f"{BACKEND_ENV}={backend!r} is unknown; use one of {BACKENDS}")
    reasons = []
    for candidate in [backend] if backend else BACKENDS:
        try:
            return factories[candidate](limit_mb, name)
        except (MemoryGroupError, OSError) as error:
            reasons.append(f"{candidate}: {error}")
    raise MemoryGroupError("; ".join(reasons))


@contextlib.contextmanager
def memory_limit(
    limit_mb: float, name_prefix: str = "memlimit", backend: str | None = None
) -> Iterator[MemoryGroup]:
    """A fresh memory group of `limit_mb`, emptied and removed however the block ends."""
    group = open_group(limit_mb, name_prefix, backend or os.environ.get(BACKEND_ENV) or None)
    if not group.enforced:
        print(
            f"WARNING: no memory cgroup can be created here; the {limit_mb} MB limit is NOT "
            "enforced and peaks are sampled RSS",
            file=sys.stderr,
            flush=True,
        )
    try:
        yield group
    finally:
        # A second Ctrl-C must not leave the group behind half-cleaned.
        previous = (
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            group.close()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
