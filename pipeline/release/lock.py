"""One promote or rollback at a time per checkout: an exclusive flock on a file in the git
directory. The kernel drops it when its holder exits or is killed, so it can never be left stuck.

The file names its holder and the holder's run id (orphans.RUN_ID_ENV, carried by every process
the run starts), and is emptied when the run ends. A run that finds run ids there took the lock
from runs that were killed: the next recovery looks for what those runs left running.
"""

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitRepo
from pipeline.release.orphans import RUN_ID_ENV

LOCK_NAME = "pipeline-release.lock"
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
# The runs killed while holding the lock this process holds now, until a recovery has dealt
# with them (none when this process holds no lock).
_interrupted_run_ids: tuple[str, ...] = ()


def lock_path(repo: GitRepo) -> Path:
    return Path(repo.run("rev-parse", "--absolute-git-dir").strip()) / LOCK_NAME


def interrupted_run_ids() -> tuple[str, ...]:
    """The run ids of the killed runs that held the release lock before this process took it."""
    return _interrupted_run_ids


def recovered() -> None:
    """Record that the killed runs' processes are dealt with: the lock file forgets them."""
    global _interrupted_run_ids
    _interrupted_run_ids = ()


@contextlib.contextmanager
def release_lock(repo: GitRepo, action: str) -> Iterator[None]:
    """Hold the checkout's release lock for the block; PromotionRefused if another run holds it."""
    global _interrupted_run_ids
    path = lock_path(repo)
    # Not inherited by git's children (Python opens files non-inheritable): an orphaned git
    # process of a killed run never keeps the lock.
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip().split(", run ")[0] or "another process"
            raise PromotionRefused(
                f"another promote or rollback is running in this checkout ({holder}, holding "
                f"{path}); wait for it to finish, then run again"
            ) from None
        handle.seek(0)
        # Every run id still named there: a run killed during a recovery passes its own on.
        interrupted = tuple(dict.fromkeys(RUN_ID.findall(handle.read())))
        run_id = uuid.uuid4().hex
        handle.seek(0)
        handle.truncate()
        handle.write(f"{action}, pid {os.getpid()}, run {' '.join((run_id, *interrupted))}\n")
        handle.flush()
        os.environ[RUN_ID_ENV] = run_id  # inherited by every process the run starts
        _interrupted_run_ids = interrupted
        try:
            yield
        finally:
            os.environ.pop(RUN_ID_ENV, None)
            handle.truncate(0)
            if _interrupted_run_ids:  # a dry run recovers nothing: the next run still will
                handle.write(f"not yet recovered, run {' '.join(_interrupted_run_ids)}\n")
                handle.flush()
            _interrupted_run_ids = ()
            fcntl.flock(handle, fcntl.LOCK_UN)
