"""One release as a transaction: checks that change nothing, then every step under a journal;
any failure undoes the local steps alone (the remote's refs never moved). Used by promote and
rollback alike.
"""

import os
from collections.abc import Callable

from pipeline.paths import Workspace
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitError, GitRepo, require_git_lfs
from pipeline.release.orphans import RUN_ID_ENV, settle
from pipeline.release.recovery import RemoteUnknown, remote_holds
from pipeline.release.remote_objects import LFS_TRACKED, ensure_remote_objects, release_objects
from pipeline.release.steps import (
    LFS_FILTER,
    Journal,
    checkpoint,
    clean_scratch,
    enable_lfs,
    push_refs,
    restore_local,
    upload_objects,
)
from service.errors import Refusal

# Files the pipeline itself rewrites: a promotion commits them rather than refusing on them.
# The stage metrics under reports/ are in git (DVC's `cache: false`) so that main holds the
# promoted candidate's verdicts, which is what a pull request's `dvc metrics diff` compares to.
# The demo's lock changes wherever the demo retrains to other bits (another CPU make).
PIPELINE_OWNED = ("dvc.lock", "demo/dvc.lock", "reports/")
UNTOUCHED = (
    "nothing was pushed: the remote's branches and tags are as they were (LFS objects "
    "already uploaded may remain there, stored under their own hash, named by no ref) and the "
    "local repository is as before"
)


def lfs_attributes(release_path: str) -> list[str]:
    return [f"{release_path}/{name} filter=lfs diff=lfs merge=lfs -text" for name in LFS_TRACKED]


def pipeline_changes(repo: GitRepo) -> list[str]:
    """The pipeline's own files changed, added or deleted since HEAD, staged or not (DVC's
    autostage stages dvc.lock itself), and new ones git does not ignore."""
    changed = repo.run("diff", "--name-only", "HEAD", "--", *PIPELINE_OWNED).splitlines()
    added = repo.run("ls-files", "-o", "--exclude-standard", "--", *PIPELINE_OWNED).splitlines()
    return sorted(set(changed + added))


def preflight(
    repo: GitRepo, remote: str, owned_may_change: bool = True, undone_paths: tuple = ()
) -> str:
    """Refuse before touching anything: git-lfs, an identity, a clean tree, a reachable remote.
    `undone_paths`: what an interrupted release changed, which the real run puts back first."""
    require_git_lfs()
    problem = repo.identity_problem()
    if problem:
        raise PromotionRefused(problem)
    dirty = repo.dirty_paths(ignore=(PIPELINE_OWNED if owned_may_change else ()) + undone_paths)
    if dirty:
        raise PromotionRefused(
            f"the working tree has uncommitted changes ({', '.join(dirty[:5])}); "
            "commit or stash them so the release commit holds only the release"
        )
    try:
        repo.remote_url(remote)
        repo.run("ls-remote", "--heads", remote, timeout=60)
    except GitError as error:
        raise PromotionRefused(f"remote {remote!r} is unreachable ({error})") from None
    return repo.branch()


def checked(*checks: Callable):
    """Run every read-only check; their results, or one refusal naming every reason."""
    results, reasons = [], []
    for check in checks:
        try:
            results.append(check())
        except Refusal as refusal:
            reasons.append(str(refusal))
    if reasons:
        raise PromotionRefused("; ".join(reasons))
    return results


def stage_release(repo: GitRepo, release_path: str, extra_paths: list[str]) -> None:
    """Track the bundle through LFS and stage it with `extra_paths`; refuse a plain blob."""
    attributes_path = repo.root / ".gitattributes"
    lines = attributes_path.read_text().splitlines() if attributes_path.exists() else []
    missing = [line for line in lfs_attributes(release_path) if line not in lines]
    if missing:
        attributes_path.write_text("\n".join([*lines, *missing]) + "\n")
    repo.run(*LFS_FILTER, "add", "-A", "--", ".gitattributes", release_path, *extra_paths)


def release(
    repo: GitRepo,
    workspace: Workspace,
    journal: Journal,
    message: str,
    write_files: Callable[[], list[str]],
    timeout: float,
    orphan_wait_seconds: float,
) -> None:
    """Every step of a release under the journal; any failure undoes the local steps alone."""
    os.environ[RUN_ID_ENV] = journal.run_id  # inherited by every git process started below
    journal.save(workspace)
    step = "write"
    try:
        enable_lfs(repo)
        extra_paths = write_files()
        checkpoint(workspace, journal, step)
        step = "commit"
        stage_release(repo, journal.release_path, extra_paths)
        repo.run("commit", "-q", "-m", message)
        journal.commit = repo.head()
        checkpoint(workspace, journal, step)
        step = "tag"
        if journal.tag:
            repo.run("tag", "-a", journal.tag, "-m", message)
        checkpoint(workspace, journal, step)
        step = "upload"
        objects = release_objects(repo, journal.commit, journal.release_path)
        upload_objects(repo, journal.remote, [item.oid for item in objects], timeout)
        checkpoint(workspace, journal, step)
        step = "verify"  # and repair: a corrupt copy the upload skipped is sent again
        ensure_remote_objects(repo, workspace, journal.remote, objects, timeout)
        checkpoint(workspace, journal, step)
        step = "push"
        try:
            push_refs(repo, journal, timeout)
        except GitError:
            # A timed-out push may leave its transport running: let it finish (or end it)
            # before asking the remote, so the answer cannot change afterwards.
            settle(journal.run_id, orphan_wait_seconds)
            if not remote_holds(repo, journal):  # a lost answer after an accepted push
                raise
        checkpoint(workspace, journal, step)
    except RemoteUnknown as error:
        raise PromotionRefused(
            f"step {step!r} failed and {error}; the release is kept locally, and the next "
            "promote or rollback finishes or undoes it"
        ) from None
    except Exception as error:
        restore_local(repo, journal)
        Journal.path(workspace).unlink(missing_ok=True)
        clean_scratch(workspace, keep_journal=False)
        if not isinstance(error, Refusal | OSError):
            raise
        raise PromotionRefused(f"step {step!r} failed: {error}\n{UNTOUCHED}") from None
    Journal.path(workspace).unlink(missing_ok=True)


def object_id(repo: GitRepo, rev: str, path: str) -> str:
    """The blob or tree id of `path` at `rev`; "" when absent."""
    return repo.run("rev-parse", "--verify", "--quiet", f"{rev}:{path.rstrip('/')}", check=False)
