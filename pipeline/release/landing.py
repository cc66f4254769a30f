"""Where a release's push left the remote, asked of the remote itself, and what brings the local
repository into agreement with it. A push can fail, or its client be killed, while the remote
goes on (over HTTPS or SSH the receive-pack runs on the server, out of reach), so after any
failed push the remote is asked what it holds before anything is said or undone:

- landed: the remote names the release commit (its tag, or a rollback's branch): finish here;
- the same release cut by another run (the same tag on the same parent, the same model):
  adopt it: fetch it, and point the local branch and tag at it;
- may still land (the branch is where the push started, or already the release, and the tag is
  free): send the same push again, or keep the release for the next run when the remote gave
  no answer;
- refused by the remote, or unable to land (the branch moved elsewhere, the tag names another
  release): the caller undoes the local steps, and the message says what the remote holds.

A remote on this machine whose receive-pack died with a killed push may hold that push's ref
locks; they are removed first, where no git process works in it.
"""

import contextlib
import json
import os
import shutil
from dataclasses import dataclass

from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import LFS_FILTER, GitError, GitRepo
from pipeline.release.orphans import RUN_ID_ENV, settle
from pipeline.release.stale_locks import holders, runs_git
from pipeline.release.steps import Journal, restore_local
from service.bundle import MANIFEST_NAME

# The journal's last step once the release's push may have started (the push records itself).
PUSHING = ("verify", "push")
# Refusals that come from a concurrent push of the same refs (another receive-pack holding the
# ref's lock, or moving it first): not the remote's last word on this release.
TRANSIENT_REFUSALS = ("lock", "failed to update ref", "atomic transaction failed")


class RemoteUnknown(GitError):
    """The remote could not be asked whether a release landed; nothing may be undone."""


class PushRefused(GitError):
    """The remote answered the push by refusing its refs (not a lost connection or timeout)."""


class ReleaseKept(PromotionRefused):
    """The push may still land: the release stays committed locally, journal and all."""


class ReleaseNotLanded(GitError):
    """The remote did not take the release and cannot now: the caller undoes the local steps."""


@dataclass(frozen=True)
class RemoteRefs:
    """What the remote's branch and the release's tag name (None: absent)."""

    branch: str | None
    tag: str | None

    def describe(self, journal: Journal) -> str:
        words = f"{journal.branch} at {self.branch[:12]}" if self.branch else "no " + journal.branch
        if journal.tag:
            words += f", {journal.tag} at {self.tag[:12]}" if self.tag else f", no {journal.tag}"
        return words


def ask_remote(repo: GitRepo, journal: Journal) -> RemoteRefs:
    """The remote's branch and release tag, by one `git ls-remote`; RemoteUnknown if it fails."""
    refs = [f"refs/heads/{journal.branch}"] + ([f"refs/tags/{journal.tag}"] if journal.tag else [])
    try:
        named = repo.remote_ref_shas(journal.remote, refs)
    except GitError as error:
        raise RemoteUnknown(
            f"could not ask {journal.remote} whether the release landed ({error}); nothing was "
            "undone: run again once the remote answers"
        ) from None
    return RemoteRefs(named[0], named[1] if journal.tag else None)


def landed(journal: Journal, refs: RemoteRefs) -> bool:
    """Whether the remote names the release: its tag, once the branch has moved off where the
    push started (an atomic push moves both); a rollback's branch."""
    if not journal.commit:
        return False
    if journal.tag:
        return refs.tag == journal.commit and (refs.branch or "") != journal.remote_before
    return refs.branch == journal.commit


def may_land(journal: Journal, refs: RemoteRefs) -> bool:
    """Whether a push of the release can still land: nothing but the release moved the refs."""
    branch_free = journal.remote_before is None or (refs.branch or "") == journal.remote_before
    tag_free = refs.tag in (None, journal.commit)
    return bool(journal.commit) and (branch_free or refs.branch == journal.commit) and tag_free


def twin_release(repo: GitRepo, journal: Journal, refs: RemoteRefs) -> str | None:
    """The commit the remote's release tag names when another run cut this same release (the
    same parent, the same model); None otherwise."""
    if not journal.tag or not journal.commit or refs.tag in (None, journal.commit):
        return None
    try:
        repo.run("fetch", "-q", "--no-tags", journal.remote, f"refs/tags/{journal.tag}")
    except GitError:
        return None
    twin = repo.ref_sha("FETCH_HEAD")
    if not twin or repo.ref_sha(f"{twin}^") != journal.old_head:
        return None
    manifest = f"{journal.release_path}/{MANIFEST_NAME}"
    model = [
        json.loads(repo.run("show", f"{commit}:{manifest}", check=False) or "{}").get("sha256")
        for commit in (twin, journal.commit)
    ]
    return twin if model[0] and model[0] == model[1] else None


def adopt(repo: GitRepo, journal: Journal, twin: str) -> str:
    """Replace the local cut by the remote's `twin`: its tag, the branch, index and release."""
    restore_local(repo, journal)
    tag = f"refs/tags/{journal.tag}"
    repo.run("fetch", "-q", "--no-tags", journal.remote, f"+{tag}:{tag}")
    repo.run("reset", "-q", "--soft", twin)
    repo.run("read-tree", twin)
    shutil.rmtree(repo.root / journal.release_path, ignore_errors=True)
    present = [path for path in journal.restore_paths if repo.run("ls-tree", twin, "--", path)]
    repo.run(*LFS_FILTER, "checkout", twin, "--", *present)
    journal.commit = twin
    finish_here(repo, journal)
    return (
        f"{journal.remote} already holds {journal.tag} at {twin[:12]}: the same release (the same "
        f"model, cut on {journal.old_head[:12]}) pushed by another run; adopted it: fetched it, "
        f"and {journal.branch} and {journal.tag} here name it now (no release cut again)"
    )


def finish_here(repo: GitRepo, journal: Journal) -> None:
    """The remote-tracking branch at the release, so `git status` does not report it ahead."""
    tracking = f"refs/remotes/{journal.remote}/{journal.branch}"
    if repo.ref_sha(tracking):
        repo.run("update-ref", tracking, journal.commit)


def push_refs(repo: GitRepo, journal: Journal) -> None:
    """Branch and tag in one atomic push, never forced, so it can only move the branch on;
    PushRefused when the remote refused them, GitError when it gave no answer."""
    refs = [f"{journal.commit}:refs/heads/{journal.branch}"]
    if journal.tag:
        refs.append(f"refs/tags/{journal.tag}")
    # The LFS pre-push hook would upload every object the new commits reach; the release's
    # own objects are uploaded and verified already, and no other object may block a release.
    args = ("push", "--porcelain", "--atomic", "--no-verify", journal.remote, *refs)
    completed = repo.attempt(*args, timeout=journal.push_timeout_seconds)
    if completed.returncode == 0:
        finish_here(repo, journal)
        return
    # --porcelain: one line per ref on stdout, "!" and the reason where the remote refused it.
    refused = [line for line in completed.stdout.splitlines() if line.startswith("!")]
    words = [*completed.stderr.strip().splitlines()[-20:], *refused]
    message = f"git push {journal.remote} failed:\n  " + "\n  ".join(words)
    transient = any(word in line for line in refused for word in TRANSIENT_REFUSALS)
    raise (PushRefused if refused and not transient else GitError)(message)


def after_failed_push(repo: GitRepo, journal: Journal, failure: GitError) -> str:
    """Ask the remote after a push failed and agree with it: what happened, when the release is
    there now (landed after all, or adopted); ReleaseKept when the push may still land;
    ReleaseNotLanded when it cannot (the caller undoes the local steps)."""
    refs = ask_remote(repo, journal)
    asked = f"asked with git ls-remote after the push failed: {refs.describe(journal)}"
    if landed(journal, refs):
        finish_here(repo, journal)
        return f"{journal.remote} holds the release all the same ({asked})"
    if twin := twin_release(repo, journal, refs):
        return adopt(repo, journal, twin)
    if may_land(journal, refs) and not isinstance(failure, PushRefused):
        raise ReleaseKept(
            f"{failure}\n{journal.remote} does not name the release ({asked}), but the push may "
            "still be arriving there (a server goes on after its client is gone): the release is "
            "kept locally, and the next promote or rollback asks again, then finishes it or "
            "pushes it again"
        )
    if may_land(journal, refs):
        raise ReleaseNotLanded(
            f"{failure}\nnothing was pushed: the remote's branches and tags are as they were "
            f"({asked}; LFS objects already uploaded may remain there, stored under their own "
            "hash, named by no ref), and the local repository is as before"
        )
    raise ReleaseNotLanded(
        f"{failure}\n{journal.remote} took none of this release and cannot now ({asked}; the "
        f"push started from {(journal.remote_before or 'nothing')[:12]}): another push moved "
        "it meanwhile. The local repository is as before: bring those commits in "
        "(`git pull --rebase --autostash`), then run again"
    )


def push_or_agree(repo: GitRepo, journal: Journal, orphan_wait_seconds: float) -> str:
    """Push the release; after a failure, ask the remote and agree with it (after_failed_push).
    "" when the push itself landed, else how the release is on the remote now."""
    try:
        push_refs(repo, journal)
    except GitError as failure:
        # A timed-out push may leave its transport running: let it finish (or end it)
        # before asking the remote, so the answer cannot change afterwards.
        settle([os.environ.get(RUN_ID_ENV, journal.run_id)], orphan_wait_seconds)
        return after_failed_push(repo, journal, failure)
    return ""


def clear_remote_push_locks(repo: GitRepo, remote: str, since: float) -> list[str]:
    """Ref lock files left in a remote on this machine by a push killed with its receive-pack
    (created since `since`, the push's start), when no git process works there; in words."""
    git_dir = repo.local_git_dir(repo.run("remote", "get-url", "--push", remote).strip())
    if git_dir is None:
        return []
    candidates = [*(git_dir / "refs").glob("**/*.lock"), git_dir / "packed-refs.lock"]
    locks = []
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime >= since - 1:
                locks.append(path)
    if not locks:
        return []
    names = ", ".join(str(path.relative_to(git_dir)) for path in locks)
    busy = holders(git_dir, runs_git, "git")
    if busy:
        return [f"left {names} in {remote} ({git_dir}) in place: {busy}"]
    for path in locks:
        path.unlink(missing_ok=True)
    return [
        f"removed {names} in {remote} ({git_dir}), left by the killed push's receive-pack "
        "(created during that push; no git process works there)"
    ]
