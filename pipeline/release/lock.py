"""One promote or rollback at a time per checkout: an exclusive flock on a file in the git
directory. The kernel drops it when its holder exits or is killed, so it can never be left stuck.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitRepo

LOCK_NAME = "pipeline-release.lock"


def lock_path(repo: GitRepo) -> Path:
    return Path(repo.run("rev-parse", "--absolute-git-dir").strip()) / LOCK_NAME


@contextlib.contextmanager
def release_lock(repo: GitRepo, action: str) -> Iterator[None]:
    """Hold the checkout's release lock for the block; PromotionRefused if another run holds it."""
    path = lock_path(repo)
    # Not inherited by git's children (Python opens files non-inheritable): an orphaned git
    # process of a killed run never keeps the lock.
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PromotionRefused(
                f"another promote or rollback is running in this checkout ({holder}, holding "
                f"{path}); wait for it to finish, then run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{action}, pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
