"""Run processes inside a real memory limit and read the kernel's own figures for it.

The OOM killer acts on a memory cgroup's own accounting (anon + page cache), which is
neither a process's RSS nor the sum of RSS; so does Render's. Backends:

- `cgroup-v1`: a child of this process's own memory group (these machines, as root);
- `cgroup-v2`: a child, or a sibling, of this process's own group in a delegated v2 subtree;
- `systemd-run`: a transient scope with MemoryMax, through the system manager as root or
  with passwordless sudo (GitHub's runners), else through the user's own manager;
- `none`: no limit can be set here (a laptop, an unprivileged container): processes run
  unconfined, the peak is the process tree's RSS sampled with psutil, `enforced` is False,
  and a warning says so.

They are tried in that order, except that where systemd is PID 1 systemd-run goes first: systemd
must be the only writer of its tree. A backend counts only once a real process has joined it.
Force one with `backend=` or $MEMORY_CGROUP_BACKEND. Every group is emptied and removed on exit,
on success, failure and Ctrl-C alike; every wait has a deadline.
"""

import contextlib
import importlib.metadata
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

BACKEND_ENV = "MEMORY_CGROUP_BACKEND"
BACKENDS = ("cgroup-v1", "cgroup-v2", "systemd-run", "none")
CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_ROOT = CGROUP_ROOT / "memory"
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")  # present only when systemd is PID 1
TERM_GRACE_SECONDS = 5.0
EMPTY_DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.05
MB = 2**20

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

logger = logging.getLogger(__name__)


class MemoryGroupError(Exception):
    """A memory group could not be created, joined or removed; the message says which and why."""


def workers_that_fit(
    per_worker_mb: float, fixed_mb: float, budget_mb: float, headroom: float = 0.9
) -> int:
    """How many workers of `per_worker_mb` fit beside `fixed_mb` in `headroom` of the budget."""
    if per_worker_mb <= 0:
        raise ValueError(f"per_worker_mb must be positive, not {per_worker_mb}")
    return max(0, math.floor((budget_mb * headroom - fixed_mb) / per_worker_mb))


def evict_from_page_cache(*paths: Path) -> None:
    """Drop the files' pages from the page cache, so the next group to read them pays for them.

    The kernel charges a cached page to the group that first read it, not to later readers:
    a model that convert and parity just wrote and read is already cached, so a service that
    mmaps it would be charged nothing, where on a fresh host it is charged in full. Dirty
    pages are written first (only clean ones can go). A no-op where the filesystem keeps
    files in memory (tmpfs). A folder stands for the files in it; a missing path is skipped.
    """
    files = [f for p in paths if p.is_dir() for f in sorted(p.iterdir()) if f.is_file()]
    for path in files + [p for p in paths if p.is_file()]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def distribution_libraries(*distribution_names: str) -> list[Path]:
    """The shared libraries of those Python distributions that are installed, not imported.

    For evict_from_page_cache: a library this process has imported is mapped, and a mapped
    page cannot be evicted.
    """
    libraries = []
    for name in distribution_names:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        libraries += [Path(f.locate()) for f in files if f.suffix == ".so" or ".so." in f.name]
    return libraries


def _read_figure(path: Path, key: str | None) -> int:
    """A cgroup file's number, or the value of its `key value` line (0 where the key is absent)."""
    text = path.read_text()
    if key is None:
        return int(text.split()[0])
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _own_group(controller: str) -> str | None:
    """This process's group path for a v1 controller, or for v2 when `controller` is ''."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):  # v2's line is "0::/path": its list is [""]
            return path
    return None


def _v2_mount() -> Path | None:
    """Where the v2 hierarchy is mounted: /sys/fs/cgroup alone, or beside v1 (hybrid)."""
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def _swap_total_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1])
    return 0


def _is_live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` until it holds or `seconds` have passed; whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


class MemoryGroup:
    """A memory limit that processes can be started in; subclasses say how it is enforced."""

    backend = "none"
    enforced = False

    def __init__(self, limit_mb: float, name: str, term_grace_seconds: float) -> None:
        self.limit_mb, self.name, self.term_grace_seconds = limit_mb, name, term_grace_seconds
        self.processes: list[subprocess.Popen] = []
        self._final_figures: dict[str, int] | None = None

    def popen(self, command: str | list[str], **kwargs) -> subprocess.Popen:
        """Start `command` (a string runs through bash -c) inside the group, in its own session."""
        if self._final_figures is not None:
            raise MemoryGroupError(f"{self.name} is closed; open another group")
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        try:
            process = subprocess.Popen(
                self._launcher(argv), start_new_session=True, preexec_fn=self._joiner(), **kwargs
            )
        except subprocess.SubprocessError as error:  # what a failing preexec_fn turns into
            raise MemoryGroupError(f"{argv[0]} could not join {self.name}: {error}") from error
        self.processes.append(process)
        return process

    def _launcher(self, argv: list[str]) -> list[str]:
        return argv

    def _joiner(self) -> Callable[[], None] | None:
        """What the child runs between fork and exec to join the group, if anything."""
        return None

    def pids(self) -> list[int]:
        """Every live process in the group."""
        pids = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(process.pid)
                pids += [root.pid, *(child.pid for child in root.children(recursive=True))]
        return [pid for pid in pids if _is_live(pid)]

    def peak_mb(self) -> float:
        """The group's highest memory use so far (v1 max_usage_in_bytes, v2 memory.peak)."""
        return self._figure("peak") / MB

    def usage_mb(self) -> float:
        """The group's memory use now, page cache included."""
        return self._figure("usage") / MB

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in the group."""
        return self._figure("oom_kills")

    def failcnt(self) -> int:
        """How many times usage hit the limit (v1 memory.failcnt, v2 `max` events)."""
        return self._figure("failcnt")

    def _figure(self, what: str) -> int:
        # After close() the group is gone; its last figures stay readable.
        if self._final_figures is not None:
            return self._final_figures[what]
        return self._read(what)

    def _read(self, what: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Kill every process in the group, keep its last figures, remove it; waits are bounded."""
        if self._final_figures is not None:
            return
        self._stop_processes()
        try:
            self._final_figures = {what: self._read(what) for what in FIGURES}
        except OSError as error:
            raise MemoryGroupError(f"could not read the figures of {self.name}: {error}") from None
        finally:
            self._remove()

    def _stop_processes(self) -> None:
        """SIGTERM, a grace period, then SIGKILL, until no process of the group is left.

        Our own children are reaped through their Popen objects only, so their return codes
        (for instance -9 after an OOM kill) stay readable to the caller.
        """
        for sig, grace in (
            (signal.SIGTERM, self.term_grace_seconds),
            (signal.SIGKILL, EMPTY_DEADLINE_SECONDS),
        ):
            self._signal(sig)
            if _wait_until(self._emptied, grace):
                return
        raise MemoryGroupError(f"processes {self.pids()} of {self.name} survived SIGKILL")

    def _signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        for process in self.processes:
            # Unreaped, its pid is still ours, so is its process group: stray descendants too.
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)

    def _emptied(self) -> bool:
        # A task leaves cgroup.procs a moment before its parent can reap it: wait for both.
        if self.pids():
            return False
        return all(process.poll() is not None for process in self.processes)

    def _remove(self) -> None:
        pass


class SampledGroup(MemoryGroup):
    """No kernel limit: the peak is the process tree's RSS, sampled at 20 Hz with psutil."""

    def __init__(self, limit_mb: float, name: str, term_grace_seconds: float) -> None:
        super().__init__(limit_mb, name, term_grace_seconds)
        self._peak_bytes = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name=name, daemon=True)
        self._sampler.start()

    def _tree_rss(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._peak_bytes = max(self._peak_bytes, self._tree_rss())

    def _read(self, what: str) -> int:
        if what == "usage":
            return self._tree_rss()
        if what == "peak":
            self._peak_bytes = max(self._peak_bytes, self._tree_rss())
            return self._peak_bytes
        return 0  # nothing counts OOM kills or limit hits when there is no limit

    def _remove(self) -> None:
        self._stop.set()
        self._sampler.join(timeout=1)


class CgroupDirGroup(MemoryGroup):
    """A group that is a cgroup directory: a process joins by writing its pid to cgroup.procs."""

    enforced = True

    def __init__(
        self,
        limit_mb: float,
        name: str,
        term_grace_seconds: float,
        directory: Path,
        version: int,
        join_with_sudo: bool = False,
    ) -> None:
        super().__init__(limit_mb, name, term_grace_seconds)
        self.directory, self.version, self.join_with_sudo = directory, version, join_with_sudo

    def _joiner(self) -> Callable[[], None] | None:
        if self.join_with_sudo:
            return None
        procs_path = os.fsencode(self.directory / "cgroup.procs")

        def join() -> None:
            # In the child before exec, so even its first allocation is counted; plain os calls
            # only, as the child of a threaded parent must take no lock.
            fd = os.open(procs_path, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" is the writing process itself
            finally:
                os.close(fd)

        return join

    def _launcher(self, argv: list[str]) -> list[str]:
        if not self.join_with_sudo:
            return argv
        # Not root: sudo writes this shell's pid into the group, then the shell becomes argv.
        join = 'echo $$ | sudo -n tee "$0" >/dev/null && exec "$@"'
        return ["sh", "-c", join, str(self.directory / "cgroup.procs"), *argv]

    def pids(self) -> list[int]:
        return [int(pid) for pid in _words(self.directory / "cgroup.procs")]

    def _read(self, what: str) -> int:
        file_name, key = FIGURE_FILES[self.version][what]
        return _read_figure(self.directory / file_name, key)

    def _remove(self) -> None:
        def removed() -> bool:
            try:
                self.directory.rmdir()
            except FileNotFoundError:
                return True
            except OSError:  # EBUSY while the kernel finishes with the last task
                return False
            return True

        if not _wait_until(removed, EMPTY_DEADLINE_SECONDS):
            raise MemoryGroupError(f"could not remove {self.directory}")


def _make_group_dir(directory: Path, settings: dict[str, str], required: tuple[str, ...]) -> None:
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


class CgroupV1Group(CgroupDirGroup):
    backend = "cgroup-v1"

    @classmethod
    def create(cls, limit_mb: float, name: str, term_grace_seconds: float) -> "CgroupV1Group":
        own = _own_group("memory")
        if own is None or not (V1_ROOT / "memory.limit_in_bytes").exists():
            raise MemoryGroupError("no cgroup v1 memory controller is mounted")
        limit = str(int(limit_mb * MB))
        settings = {"memory.limit_in_bytes": limit}
        # No swapping out of trouble; but a memsw limit also stops memory.failcnt counting
        # (measured on Linux 6.18), so it is set only where there is swap to stop.
        if _swap_total_kb() > 0:
            settings["memory.memsw.limit_in_bytes?"] = limit
        directory = V1_ROOT / own.lstrip("/") / name
        _make_group_dir(directory, settings, required=())
        return cls(limit_mb, name, term_grace_seconds, directory, version=1)


class CgroupV2Group(CgroupDirGroup):
    backend = "cgroup-v2"

    @classmethod
    def create(cls, limit_mb: float, name: str, term_grace_seconds: float) -> "CgroupV2Group":
        mount, own = _v2_mount(), _own_group("")
        if mount is None or own is None:
            raise MemoryGroupError("no cgroup v2 hierarchy is mounted")
        own_dir = mount / own.lstrip("/")
        # A group with processes cannot have children with controllers ("no internal
        # processes"), so a delegatee that moved itself into a leaf creates siblings instead.
        parents = [own_dir] if own_dir == mount else [own_dir, own_dir.parent]
        usable = [
            parent
            for parent in parents
            if "memory" in _words(parent / "cgroup.subtree_control") and os.access(parent, os.W_OK)
        ]
        if not usable:
            raise MemoryGroupError(
                f"{own_dir} and its parent do not delegate the memory controller"
            )
        settings = {"memory.max": str(int(limit_mb * MB)), "memory.swap.max?": "0"}
        directory = usable[0] / name
        # memory.peak arrived in Linux 5.19.
        _make_group_dir(directory, settings, required=("memory.peak", "memory.events"))
        return cls(limit_mb, name, term_grace_seconds, directory, version=2)


def _systemd_manager() -> tuple[list[str], list[str]]:
    """How to reach a manager that may set MemoryMax: (sudo prefix, systemctl/systemd-run flags)."""
    if os.geteuid() == 0:
        return [], []
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        if subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10).returncode == 0:
            return ["sudo", "-n"], []
    return [], ["--user"]


class SystemdScopeGroup(CgroupDirGroup):
    """A transient systemd scope with MemoryMax, held open by a small `holder` process.

    Delegate=yes makes the scope's cgroup ours to write into, and leaves an OOM kill to the
    kernel (OOMPolicy=continue) instead of systemd stopping the whole scope.
    """

    backend = "systemd-run"

    def __init__(self, *args, holder: subprocess.Popen, holder_pid: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.holder, self.holder_pid = holder, holder_pid

    @classmethod
    def create(cls, limit_mb: float, name: str, term_grace_seconds: float) -> "SystemdScopeGroup":
        if not SYSTEMD_RUNTIME_DIR.is_dir() or shutil.which("systemd-run") is None:
            raise MemoryGroupError("systemd is not PID 1 here")
        hierarchy = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else V1_ROOT
        sudo, flags = _systemd_manager()
        run = [*sudo, "systemd-run", *flags, "--scope", "--quiet", "--collect", f"--unit={name}"]
        properties = [f"MemoryMax={int(limit_mb * MB)}", "MemorySwapMax=0", "Delegate=yes"]
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
            if cgroup and (pids := _words(directory / "cgroup.procs")):
                return cls(
                    limit_mb,
                    name,
                    term_grace_seconds,
                    directory,
                    version=2 if hierarchy == CGROUP_ROOT else 1,
                    join_with_sudo=bool(sudo),
                    holder=holder,
                    holder_pid=int(pids[0]),
                )
            time.sleep(POLL_SECONDS)
        holder.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            holder.wait(timeout=EMPTY_DEADLINE_SECONDS)
        error = holder.stderr.read().decode().strip() if holder.returncode is not None else ""
        holder.stderr.close()
        raise MemoryGroupError(f"systemd-run did not start {name}.scope: {error or 'timed out'}")

    def pids(self) -> list[int]:
        return [pid for pid in super().pids() if pid != self.holder_pid]

    def _remove(self) -> None:
        # systemd removes the scope, and its cgroup, once the holder has gone too.
        self.holder.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.holder.wait(timeout=EMPTY_DEADLINE_SECONDS)
        self.holder.stderr.close()
        if not _wait_until(lambda: not self.directory.exists(), EMPTY_DEADLINE_SECONDS):
            raise MemoryGroupError(f"systemd did not remove {self.directory}")


FACTORIES = {
    "cgroup-v1": CgroupV1Group.create,
    "cgroup-v2": CgroupV2Group.create,
    "systemd-run": SystemdScopeGroup.create,
    "none": SampledGroup,
}
EXPECTED_FAILURES = (MemoryGroupError, OSError, subprocess.SubprocessError)


def _prove_joinable(group: MemoryGroup) -> None:
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
    if SYSTEMD_RUNTIME_DIR.is_dir():  # systemd must be the only writer of its tree
        return ["systemd-run", "cgroup-v1", "cgroup-v2", "none"]
    return list(BACKENDS)


def open_group(
    limit_mb: float,
    name_prefix: str,
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
) -> MemoryGroup:
    """The best memory group this machine allows, or exactly `backend`; the caller closes it."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name_prefix):
        raise ValueError(f"name_prefix {name_prefix!r} may hold only letters, digits, '_.-'")
    name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
    reasons = []
    for candidate in _candidates(backend):
        try:
            group = FACTORIES[candidate](limit_mb, name, term_grace_seconds)
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
        if not group.enforced:
            logger.warning(
                "WARNING: the %s MB memory limit is NOT enforced (%s); processes run unconfined "
                "and their peak is sampled RSS, not what a kernel would count",
                limit_mb,
                "; ".join(reasons) or "backend 'none' was asked for",
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
def memory_limit(
    limit_mb: float,
    name_prefix: str = "memlimit",
    backend: str | None = None,
    term_grace_seconds: float = TERM_GRACE_SECONDS,
) -> Iterator[MemoryGroup]:
    """A fresh memory group of `limit_mb`, emptied and removed however the block ends.

    Args:
        backend: one of BACKENDS; default $MEMORY_CGROUP_BACKEND, else the best available.
        term_grace_seconds: how long processes get between SIGTERM and SIGKILL on exit.
    """
    group = open_group(
        limit_mb, name_prefix, backend or os.environ.get(BACKEND_ENV) or None, term_grace_seconds
    )
    try:
        yield group
    finally:
        with _sigint_held():
            group.close()
