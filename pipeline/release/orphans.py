"""The git processes a killed release left behind. Every git command a release starts carries
the release's run id in its environment (inherited by git's own children: receive-pack, hooks,
git-lfs, ssh), so the next run can find them, wait for them, and end those that do not finish.
"""

import os
import signal
import time
from pathlib import Path

RUN_ID_ENV = "PIPELINE_RELEASE_RUN"
# After SIGTERM, how long a process has before SIGKILL, and how often /proc is read.
TERM_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2


def processes_of(run_id: str) -> list[int]:
    """PIDs of live processes whose environment carries `run_id` (read from /proc)."""
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environment = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or another user's
            continue
        if marker in environment and state != "Z" and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def settle(run_id: str, wait_seconds: float) -> str:
    """Wait up to `wait_seconds` for the run's processes to exit, then end the rest; in words,
    what happened ("" when there were none)."""
    pids = processes_of(run_id)
    if not pids:
        return ""
    count = len(pids)
    deadline = time.monotonic() + wait_seconds
    while pids and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        pids = processes_of(run_id)
    if not pids:
        return f"waiting for the {count} git process(es) the killed run left to finish"
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while (pids := processes_of(run_id)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    signal_all(pids, signal.SIGKILL)
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while processes_of(run_id) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return (
        f"ending the git process(es) the killed run left, still running after "
        f"{wait_seconds:.0f} s (promote.orphan_wait_seconds)"
    )
