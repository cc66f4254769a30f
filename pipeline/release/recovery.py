"""Clean up after killed runs, and finish or undo a release one left half-done, never undoing
what may have landed: first the processes the killed runs left are waited for (or ended) and
the lock files killed commands left are removed where nothing holds them (stale_locks); then,
when the release's push may have started, the remote is asked what it holds (landing), and only
then is the release finished, adopted, pushed again or undone.
"""

import os

from pipeline.paths import Workspace
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitError, GitRepo
from pipeline.release.landing import (
    PUSHING,
    ReleaseNotLanded,
    adopt,
    ask_remote,
    clear_remote_push_locks,
    finish_here,
    landed,
    may_land,
    push_or_agree,
    twin_release,
)
from pipeline.release.lock import interrupted_run_ids, recovered
from pipeline.release.orphans import RUN_ID_ENV, settle
from pipeline.release.stale_locks import clear_stale_locks
from pipeline.release.steps import Journal, clean_scratch, restore_local


def undo(repo: GitRepo, workspace: Workspace, journal: Journal, what: str) -> None:
    """Put the local repository back as it was before the interrupted release."""
    head = repo.head()
    ours = head in (journal.old_head, journal.commit) or repo.ref_sha("HEAD^") == journal.old_head
    if not ours:
        raise GitError(
            f"{what} left {Journal.path(workspace)}, but HEAD has moved to {head[:12]} since "
            f"(it started at {journal.old_head[:12]}); check `git log`, then delete that file "
            "and run again"
        )
    restore_local(repo, journal)
    Journal.path(workspace).unlink()


def recover(repo: GitRepo, workspace: Workspace, orphan_wait_seconds: float) -> Journal | None:
    """Clean up after killed runs and finish or undo the release one left half-done; the
    journal when that release is on the remote now (finished, adopted or pushed again)."""
    journal = Journal.load(workspace)
    run_ids = [*interrupted_run_ids(), *([journal.run_id] if journal else [])]
    settled = settle(run_ids, orphan_wait_seconds)
    for message in clear_stale_locks(repo, workspace):
        print(message)
    recovered()
    clean_scratch(workspace, keep_journal=journal is not None)
    if journal is None:
        return None
    what = (
        f"an interrupted {journal.action} ({journal.tag or journal.branch}, step {journal.step!r})"
    )
    if journal.step not in PUSHING:
        undo(repo, workspace, journal, what)
        print(
            f"{what} never reached {journal.remote}: it stopped before its push; undid its local "
            "steps, starting again"
        )
        return None
    if journal.push_started_at is not None:
        for message in clear_remote_push_locks(repo, journal.remote, journal.push_started_at):
            print(message)
    refs = ask_remote(repo, journal)
    asked = f"asked with git ls-remote{f' after {settled}' if settled else ''}"
    if landed(journal, refs):
        finish_here(repo, journal)
        print(f"{what} had reached {journal.remote} ({asked}); it is complete: finished it here")
        Journal.path(workspace).unlink()
        return journal
    if twin := twin_release(repo, journal, refs):
        print(f"{what}: {adopt(repo, journal, twin)}")
        Journal.path(workspace).unlink()
        return journal
    if not may_land(journal, refs):
        undo(repo, workspace, journal, what)
        raise PromotionRefused(
            f"{what} cannot land on {journal.remote} any more ({asked}: "
            f"{refs.describe(journal)}; its push started from "
            f"{(journal.remote_before or 'nothing')[:12]}): another push moved it meanwhile. "
            "Undid its local steps; bring those commits in (`git pull --rebase --autostash`), "
            "then run again"
        )
    print(
        f"{what} is not on {journal.remote} ({asked}: {refs.describe(journal)}); its push was "
        "cut short or is still arriving there, so the same release commit is pushed again"
    )
    journal.run_id = os.environ.get(RUN_ID_ENV, journal.run_id)  # this run's processes now
    journal.save(workspace)
    try:
        note = push_or_agree(repo, journal, orphan_wait_seconds)
    except ReleaseNotLanded as error:
        undo(repo, workspace, journal, what)
        raise PromotionRefused(f"{what} was pushed again: {error}") from None
    print(f"{what}: {note or f'pushed it to {journal.remote}'}; it is complete")
    Journal.path(workspace).unlink()
    return journal
