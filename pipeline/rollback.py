"""Roll the release back to an earlier tag: release/, reports/ and dvc.lock exactly as they were
at that tag, committed and pushed like a promotion (no new tag: the release is that tag again).

    python -m pipeline.promote --rollback model-v3
"""

import os
import shutil

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.bundle import PromotionRefused
from pipeline.release.git_repo import GitRepo
from pipeline.release.steps import LFS_FILTER, Journal, recover
from pipeline.release.transaction import PIPELINE_OWNED, object_id, preflight, release
from service.bundle import MODEL_NAME, sha256_of


def rollback(workspace: Workspace, tag: str, remote: str | None, dry_run: bool) -> None:
    """Restore release/, reports/ and dvc.lock as they were at `tag`; commit and push them."""
    params = load_params(workspace)
    remote = remote or params["promote"]["remote"]
    repo = GitRepo.containing(workspace.root)
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    if tag not in repo.tags(tag):
        raise PromotionRefused(f"there is no tag {tag!r}; see `git tag --list 'model-v*'`")
    if not dry_run:
        recover(repo, workspace)
    # A rollback rewrites dvc.lock and reports/ too: uncommitted pipeline output would be lost.
    branch = preflight(repo, remote, owned_may_change=False)
    restored = [
        path
        for path in (release_path, *PIPELINE_OWNED)
        if repo.run("ls-tree", "--name-only", tag, "--", path.rstrip("/")).strip()
    ]
    same = all(object_id(repo, "HEAD", path) == object_id(repo, tag, path) for path in restored)
    if same and repo.remote_ref_sha(remote, f"refs/heads/{branch}") == repo.head():
        print(f"already at {tag}: {', '.join(restored)} match it on {remote}/{branch}")
        return
    message = f"Roll back the release to {tag}"
    if dry_run:
        print(
            f"dry run, nothing changed; would restore {', '.join(restored)} from {tag}, commit "
            f"'{message}' on {branch} and push it to {remote}"
        )
        return

    def write_files() -> list[str]:
        # Exactly as at the tag: files added since (a later release's reports) go too.
        repo.run("rm", "-r", "-q", "--ignore-unmatch", "--", *restored)
        shutil.rmtree(workspace.release_dir, ignore_errors=True)
        repo.run(*LFS_FILTER, "checkout", tag, "--", *restored)  # stages them too
        return []

    restored_paths = tuple(path.rstrip("/") for path in restored)
    journal = Journal.begin(repo, "rollback", branch, remote, None, release_path, restored_paths)
    timeout = float(params["promote"]["push_timeout_seconds"])
    release(repo, workspace, journal, message, write_files, timeout)
    sha256 = sha256_of(workspace.release_dir / MODEL_NAME)
    print(f"rolled back to {tag}: {sha256} pushed to {remote}/{branch}")
