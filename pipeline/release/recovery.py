"""Finish or undo a release a killed run left half-done, never undoing what may have landed:
first the git processes the killed run left are waited for (or ended), then the remote is asked
what it holds, and only then is the release finished or undone locally.
"""

import os
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.release.git_repo import GitError, GitRepo
from pipeline.release.orphans import settle
from pipeline.release.steps import Journal, clean_scratch, restore_local


class RemoteUnknown(GitError):
    """The remote could not be asked whether a release landed; nothing may be undone."""


def remote_holds(repo: GitRepo, journal: Journal) -> bool:
    """Whether the remote names the journal's release commit (its tag, or else its branch);
    RemoteUnknown when the remote cannot be asked."""
    if not journal.commit:
        return False
    try:
        if journal.tag:  # pushed atomically with the branch: the tag alone decides
            tag_sha = repo.remote_ref_sha(journal.remote, f"refs/tags/{journal.tag}")
            return tag_sha == journal.commit
        branch_sha = repo.remote_ref_sha(journal.remote, f"refs/heads/{journal.branch}")
    except GitError as error:
        raise RemoteUnknown(
            f"could not ask {journal.remote} whether the release landed ({error}); nothing was "
            "undone: run again once the remote answers"
        ) from None
    return branch_sha == journal.commit


def git_running_in(root: Path) -> bool:
    """Whether a live git process works in `root` (read from /proc; False where there is none)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")[0]
            if Path(os.fsdecode(command)).name == "git" and Path(os.readlink(proc / "cwd")) == root:
                return True
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return False


def remove_stale_git_locks(repo: GitRepo) -> None:
    """Remove the lock files (index, HEAD, refs) git commands killed with promote left, once
    no git works in the repository; the release lock's own file is not one of them."""
    git_dir = Path(repo.run("rev-parse", "--absolute-git-dir").strip())
    if git_running_in(repo.root.resolve()):
        return
    stale = [git_dir / name for name in ("index.lock", "HEAD.lock", "packed-refs.lock")]
    stale += (git_dir / "refs").glob("**/*.lock")
    for lock in stale:
        if lock.exists():
            lock.unlink()
            print(f"removed {lock}, left by a git command of the interrupted run")


def recover(repo: GitRepo, workspace: Workspace, orphan_wait_seconds: float) -> Journal | None:
    """Finish or undo a release a previous run left half-done; the journal if it had landed."""
    journal = Journal.load(workspace)
    settled = settle(journal.run_id, orphan_wait_seconds) if journal and journal.run_id else ""
    clean_scratch(workspace, keep_journal=journal is not None)
    if journal is None:
        return None
    what = (
        f"an interrupted {journal.action} ({journal.tag or journal.branch}, step {journal.step!r})"
    )
    asked = f"asked with git ls-remote{f' after {settled}' if settled else ''}"
    if remote_holds(repo, journal):
        tracking = f"refs/remotes/{journal.remote}/{journal.branch}"
        if repo.ref_sha(tracking):
            repo.run("update-ref", tracking, journal.commit)
        print(f"{what} had reached {journal.remote} ({asked}); it is complete: finished it here")
        Journal.path(workspace).unlink()
        return journal
    head = repo.head()
    ours = head in (journal.old_head, journal.commit) or repo.ref_sha("HEAD^") == journal.old_head
    if not ours:
        raise GitError(
            f"{what} left {Journal.path(workspace)}, but HEAD has moved to {head[:12]} since "
            f"(it started at {journal.old_head[:12]}); check `git log`, then delete that file "
            "and run again"
        )
    remove_stale_git_locks(repo)
    restore_local(repo, journal)
    print(
        f"{what} never reached {journal.remote} ({asked}: it names neither the release commit "
        "nor its tag); undid its local steps, starting again"
    )
    Journal.path(workspace).unlink()
    return None
