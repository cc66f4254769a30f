"""One release as a transaction: checks that change nothing, then every step under a journal;
a failure before the push undoes the local steps alone (the remote's refs never moved), and a
failed push is judged by what the remote holds (landing). Used by promote and rollback alike.
"""

import os
import time
from collections.abc import Callable

from pipeline.paths import Workspace
from pipeline.release.docs_refresh import docs_paths, refresh_docs
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import LFS_FILTER, GitError, GitRepo, require_git_lfs
from pipeline.release.landing import ReleaseKept, RemoteUnknown, push_or_agree
from pipeline.release.orphans import RUN_ID_ENV
from pipeline.release.remote_objects import LFS_TRACKED, ensure_remote_objects, release_objects
from pipeline.release.steps import (
    Journal,
    checkpoint,
    clean_scratch,
    enable_lfs,
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


def owned_file_changes(repo: GitRepo) -> list[str]:
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
) -> bool:
    """Every step of a release under the journal; a failure before the push undoes the local
    steps alone; after a failed push the remote is asked what it holds (landing). True when the
    remote holds the commit cut here, False when it holds the same release cut by another run,
    adopted here."""
    os.environ[RUN_ID_ENV] = journal.run_id  # inherited by every git process started below
    journal.push_timeout_seconds = timeout
    journal.restore_paths = [*journal.restore_paths, *docs_paths(workspace, repo.root)]
    journal.save(workspace)
    step = "write"
    try:
        enable_lfs(repo)
        extra_paths = write_files() + refresh_docs(workspace, repo.root)  # from what it wrote
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
        # Where the push starts from: a push that can no longer land is told from one that may.
        branch_ref = f"refs/heads/{journal.branch}"
        journal.remote_before = repo.remote_ref_sha(journal.remote, branch_ref) or ""
        journal.push_started_at = time.time()
        checkpoint(workspace, journal, step)
        step = "push"
        cut_here = journal.commit
        landed_otherwise = push_or_agree(repo, journal, orphan_wait_seconds)
        if landed_otherwise:
            print(landed_otherwise)
        checkpoint(workspace, journal, step)
    except RemoteUnknown as error:
        raise PromotionRefused(
            f"step {step!r} failed and {error}; the release is kept locally, and the next "
            "promote or rollback finishes or undoes it"
        ) from None
    except ReleaseKept:
        raise
    except Exception as error:
        restore_local(repo, journal)
        Journal.path(workspace).unlink(missing_ok=True)
        clean_scratch(workspace, keep_journal=False)
        if not isinstance(error, Refusal | OSError):
            raise
        # After the push, the message says what the remote was asked and holds.
        detail = str(error) if step == "push" else f"{error}\n{UNTOUCHED}"
        raise PromotionRefused(f"step {step!r} failed: {detail}") from None
    Journal.path(workspace).unlink(missing_ok=True)
    return journal.commit == cut_here


def object_id(repo: GitRepo, rev: str, path: str) -> str:
    """The blob or tree id of `path` at `rev`; "" when absent."""
    return repo.run("rev-parse", "--verify", "--quiet", f"{rev}:{path.rstrip('/')}", check=False)
