"""The group every backend builds on: start processes in it, read its figures, empty it.

A group holds a memory limit and, when asked, a CPU share (a CFS quota of `share` CPUs per
period). Each backend says whether the kernel enforces each of them; a backend that cannot
enforce one still runs, and says so through `enforced` and `cpu_enforced`.
"""

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil

from pipeline.cgroups.accounting import CpuAccounting
from pipeline.cgroups.common import (
    EMPTY_DEADLINE_SECONDS,
    FIGURE_FILES,
    FIGURES,
    HIGH_CPU_WEIGHT,
    MB,
    MemoryGroupError,
    is_live,
    read_figure,
    remove_group_dir,
    wait_until,
    words,
)


class ResourceGroup(CpuAccounting):
    """A memory limit (and maybe a CPU share) that processes start in; subclasses enforce it."""

    backend = "none"
    enforced = False

    def __init__(
        self,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        cpu_share: float | None = None,
    ) -> None:
        self.limit_mb, self.name, self.term_grace_seconds = limit_mb, name, term_grace_seconds
        self.cpu_share = cpu_share
        self.cpu_enforced = False
        self.cpu_backend = "none"
        self.cpu_note = "no CPU share was asked for" if cpu_share is None else ""
        self.processes: list[subprocess.Popen] = []
        self.joined_pids: list[int] = []
        self._final_figures: dict[str, int] | None = None
        self._final_cpu: tuple[int, float] = (0, 0.0)

    def popen(self, command: str | list[str], **kwargs) -> subprocess.Popen:
        """Start `command` (a string runs through bash -c) inside the group, in its own session."""
        self._check_open()
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        try:
            process = subprocess.Popen(
                self._launcher(argv), start_new_session=True, preexec_fn=self._joiner(), **kwargs
            )
        except subprocess.SubprocessError as error:  # what a failing preexec_fn turns into
            raise MemoryGroupError(f"{argv[0]} could not join {self.name}: {error}") from error
        self.processes.append(process)
        return process

    def join(self, pid: int) -> None:
        """Move a running process, and the children it has now, into the group.

        Children it starts later are born in the group; on close they are all stopped with it.
        Memory it already holds stays charged where it was (cgroup v1 moves no charges), so
        start a process with popen() where its memory figures matter.
        """
        self._check_open()
        if not is_live(pid):
            raise MemoryGroupError(f"process {pid} is not running, so it cannot join {self.name}")
        pending = [pid]
        while pending:  # parents first: a child forked after its parent moved is born inside
            current = pending.pop()
            try:
                self._move(current)
            except (OSError, subprocess.SubprocessError) as error:
                if current != pid and not is_live(current):
                    continue  # a child that exited meanwhile
                message = f"process {current} could not join {self.name}: {error}"
                raise MemoryGroupError(message) from error
            with contextlib.suppress(psutil.Error):
                pending += [child.pid for child in psutil.Process(current).children()]
        self.joined_pids.append(pid)

    def _move(self, pid: int) -> None:
        """Put one running process into the group (nothing to do where nothing is enforced)."""

    def _check_open(self) -> None:
        if self._final_figures is not None:
            raise MemoryGroupError(f"{self.name} is closed; open another group")

    def _launcher(self, argv: list[str]) -> list[str]:
        return argv

    def _joiner(self) -> Callable[[], None] | None:
        """What the child runs between fork and exec to join the group, if anything."""
        return None

    def pids(self) -> list[int]:
        """Every live process in the group."""
        pids = []
        for root_pid in [process.pid for process in self.processes] + self.joined_pids:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(root_pid)
                pids += [root.pid, *(child.pid for child in root.children(recursive=True))]
        return [pid for pid in pids if is_live(pid)]

    def cpu_throttling(self) -> tuple[int, float]:
        """(CFS periods in which the group was throttled, seconds it spent throttled)."""
        if self._final_figures is not None:
            return self._final_cpu
        return self._read_throttling()

    def _read_throttling(self) -> tuple[int, float]:
        return 0, 0.0

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
            self._final_cpu = self._read_throttling()
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
            if wait_until(self._emptied, grace):
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


def join_by_writing(*procs_files: Path) -> Callable[[], None]:
    """A preexec function that moves the child into every group of `procs_files`."""
    paths = [os.fsencode(path) for path in procs_files]

    def join() -> None:
        # In the child before exec, so even its first allocation and cycle are counted; plain
        # os calls only, as the child of a threaded parent must take no lock.
        for path in paths:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" is the writing process itself
            finally:
                os.close(fd)

    return join


class CgroupDirGroup(ResourceGroup):
    """A group that is a cgroup directory: a process joins by writing its pid to cgroup.procs."""

    enforced = True

    def __init__(
        self,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        directory: Path,
        version: int,
        join_with_sudo: bool = False,
        cpu_share: float | None = None,
    ) -> None:
        super().__init__(limit_mb, name, term_grace_seconds, cpu_share)
        self.directory, self.version, self.join_with_sudo = directory, version, join_with_sudo
        if version == 2:
            self.accounting_file = directory / "cpu.stat"
            if (directory / "cpu.pressure").exists():
                self.pressure_file = directory / "cpu.pressure"

    def prioritise_cpu(self) -> bool:
        weight_file = self.directory / "cpu.weight"
        if self.version != 2 or not weight_file.exists():
            return False
        weight_file.write_text(str(HIGH_CPU_WEIGHT[2]))
        return True

    def procs_files(self) -> list[Path]:
        """Every cgroup.procs a process must be written to (v1: one per controller tree)."""
        return [self.directory / "cgroup.procs"]

    def _joiner(self) -> Callable[[], None] | None:
        return None if self.join_with_sudo else join_by_writing(*self.procs_files())

    def _launcher(self, argv: list[str]) -> list[str]:
        if not self.join_with_sudo:
            return argv
        # Not root: sudo writes this shell's pid into the groups, then the shell becomes argv.
        files = self.procs_files()
        targets = " ".join(f'"${index}"' for index in range(len(files)))
        join = f"echo $$ | sudo -n tee {targets} >/dev/null"
        script = f'{join} && shift {len(files) - 1} && exec "$@"'
        return ["sh", "-c", script, *(str(f) for f in files), *argv]

    def _move(self, pid: int) -> None:
        files = self.procs_files()
        if self.join_with_sudo:
            tee = ["sudo", "-n", "tee", *map(str, files)]
            subprocess.run(
                tee, input=f"{pid}".encode(), capture_output=True, check=True, timeout=10
            )
            return
        for path in files:
            path.write_text(str(pid))

    def pids(self) -> list[int]:
        return [int(pid) for pid in words(self.directory / "cgroup.procs")]

    def _read(self, what: str) -> int:
        file_name, key = FIGURE_FILES[self.version][what]
        return read_figure(self.directory / file_name, key)

    def _remove(self) -> None:
        remove_group_dir(self.directory)
