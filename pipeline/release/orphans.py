"""The processes a killed release left behind. Every process a release starts carries the
release's run id in its environment (inherited by git's own children: receive-pack, hooks,
git-lfs, ssh), so the next run can find them, wait for them, and end those that do not finish.
Also: which live processes work in a folder (a git or DVC command that may hold its locks).
"""

import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

RUN_ID_ENV = "PIPELINE_RELEASE_RUN"
# After SIGTERM, how long a process has before SIGKILL, and how often /proc is read.
TERM_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2


def live_pids() -> Iterable[tuple[int, Path]]:
    """(pid, /proc/<pid>) of every live process but this one; zombies hold nothing."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if state != "Z" and int(proc.name) != os.getpid():
            yield int(proc.name), proc


def processes_of(run_ids: Iterable[str]) -> list[int]:
    """PIDs of live processes whose environment carries one of `run_ids` (read from /proc)."""
    markers = {f"{RUN_ID_ENV}={run_id}".encode() for run_id in run_ids}
    found = []
    for pid, proc in live_pids():
        try:
            environment = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's
            continue
        if markers.intersection(environment):
            found.append(pid)
    return found


def processes_in(folder: Path, wanted: Callable[[list[str]], bool]) -> list[tuple[int, str]]:
    """(pid, command line) of live processes working in `folder` or below it whose command
    line (argv) `wanted` accepts."""
    folder = folder.resolve()
    found = []
    for pid, proc in live_pids():
        try:
            argv = [os.fsdecode(part) for part in (proc / "cmdline").read_bytes().split(b"\0")]
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if (cwd == folder or folder in cwd.parents) and argv[0] and wanted(argv):
            found.append((pid, " ".join(part for part in argv if part)))
    return found


def processes_with_open(paths: Iterable[Path]) -> list[tuple[int, str, Path]]:
    """(pid, command line, path) of live processes that have one of `paths` open (read from
    /proc/<pid>/fd): a lock file's holder, whatever program it is."""
    wanted = {str(path.resolve()): path for path in paths}
    found = []
    for pid, proc in live_pids():
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            argv = [os.fsdecode(part) for part in (proc / "cmdline").read_bytes().split(b"\0")]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for link in set(links) & wanted.keys():
            found.append((pid, " ".join(part for part in argv if part), wanted[link]))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def settle(run_ids: Iterable[str], wait_seconds: float) -> str:
    """Wait up to `wait_seconds` for the runs' processes to exit, then end the rest; in words,
    what happened ("" when there were none)."""
    run_ids = [run_id for run_id in run_ids if run_id]
    pids = processes_of(run_ids) if run_ids else []
    if not pids:
        return ""
    count = len(pids)
    deadline = time.monotonic() + wait_seconds
    while pids and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        pids = processes_of(run_ids)
    if not pids:
        return f"waiting for the {count} process(es) the killed run left to finish"
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while (pids := processes_of(run_ids)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    signal_all(pids, signal.SIGKILL)
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while processes_of(run_ids) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return (
        f"ending the process(es) the killed run left, still running after "
        f"{wait_seconds:.0f} s (promote.orphan_wait_seconds)"
    )
