"""Promote the candidate that passed every gate for the current inputs: release/ committed
through Git LFS, tagged and pushed, or the remote's refs untouched.

    python -m pipeline.promote [--dry-run] [--remote NAME]
    python -m pipeline.promote --rollback model-v3
"""

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Callable

from pipeline.git_repo import GitError, GitRepo, require_git_lfs
from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release_bundle import GOLDEN_NAME, PromotionRefused, blessed_verdicts, write_release
from pipeline.release_steps import (
    LFS_FILTER,
    Journal,
    ReleaseFailed,
    checkpoint,
    clean_scratch,
    enable_lfs,
    lfs_object_ids,
    push_refs,
    reached_remote,
    recover,
    restore_local,
    scratch_dir,
    upload_objects,
    verify_objects,
)
from service.bundle import MANIFEST_NAME, MODEL_NAME, sha256_of

LFS_TRACKED = (MODEL_NAME, GOLDEN_NAME)
# Files the pipeline itself rewrites: a promotion commits them rather than refusing on them.
# The stage metrics under reports/ are in git (DVC's `cache: false`) so that main holds the
# promoted candidate's verdicts, which is what a pull request's `dvc metrics diff` compares to.
PIPELINE_OWNED = ("dvc.lock", "reports/")
UNTOUCHED = (
    "nothing was pushed: the remote's branches and tags are as they were (LFS objects "
    "already uploaded may remain there, content-addressed and harmless) and the local "
    "repository is as before"
)


def lfs_attributes(release_path: str) -> list[str]:
    return [f"{release_path}/{name} filter=lfs diff=lfs merge=lfs -text" for name in LFS_TRACKED]


def next_version(repo: GitRepo, tag_prefix: str) -> int:
    numbers = [
        int(m.group(1))
        for tag in repo.tags(f"{tag_prefix}*")
        if (m := re.fullmatch(re.escape(tag_prefix) + r"(\d+)", tag))
    ]
    return max(numbers, default=0) + 1


def pipeline_changes(repo: GitRepo) -> list[str]:
    """The pipeline's own files changed, added or deleted since HEAD (not ignored ones)."""
    listed = repo.run("ls-files", "-m", "-o", "-d", "--exclude-standard", "--", *PIPELINE_OWNED)
    return sorted(set(listed.splitlines()))


def preflight(repo: GitRepo, remote: str, owned_may_change: bool = True) -> str:
    """Refuse before touching anything: git-lfs, an identity, a clean tree, a reachable remote."""
    require_git_lfs()
    problem = repo.identity_problem()
    if problem:
        raise PromotionRefused(problem)
    dirty = repo.dirty_paths(ignore=PIPELINE_OWNED if owned_may_change else ())
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
        except (PromotionRefused, GitError) as refusal:
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
) -> None:
    """Every step of a release under the journal; any failure undoes the local steps alone."""
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
        paths = [f"{journal.release_path}/{name}" for name in LFS_TRACKED]
        oids = lfs_object_ids(repo, journal.commit, paths)
        upload_objects(repo, journal.remote, list(oids.values()), timeout)
        checkpoint(workspace, journal, step)
        step = "verify"
        verify_objects(repo, workspace, journal.remote, journal.commit, oids, timeout)
        checkpoint(workspace, journal, step)
        step = "push"
        try:
            push_refs(repo, journal, timeout)
        except GitError:
            if not reached_remote(repo, journal):  # a lost answer after an accepted push
                raise
        checkpoint(workspace, journal, step)
    except Exception as error:
        restore_local(repo, journal)
        Journal.path(workspace).unlink(missing_ok=True)
        clean_scratch(workspace, keep_journal=False)
        if not isinstance(error, GitError | ReleaseFailed | PromotionRefused | OSError):
            raise
        raise PromotionRefused(f"step {step!r} failed: {error}\n{UNTOUCHED}") from None
    Journal.path(workspace).unlink(missing_ok=True)


def already_promoted(repo: GitRepo, remote: str, branch: str, release_path: str, sha256: str):
    """The tag under which HEAD already released this candidate to the remote, or None."""
    manifest = repo.run("show", f"HEAD:{release_path}/{MANIFEST_NAME}", check=False)
    if not manifest or json.loads(manifest).get("sha256") != sha256:
        return None
    if repo.remote_ref_sha(remote, f"refs/heads/{branch}") != repo.head():
        return None
    tags = repo.run("tag", "--points-at", "HEAD").split()
    return tags[0] if tags else None


def object_id(repo: GitRepo, rev: str, path: str) -> str:
    """The blob or tree id of `path` at `rev`; "" when absent."""
    return repo.run("rev-parse", "--verify", "--quiet", f"{rev}:{path.rstrip('/')}", check=False)


def promote(workspace: Workspace, remote: str | None, dry_run: bool) -> str:
    """Promote build/candidate; the new tag. Raises PromotionRefused with every reason."""
    params = load_params(workspace)
    settings = params["promote"]
    remote = remote or settings["remote"]
    repo = GitRepo.containing(workspace.root)
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    if not dry_run:
        landed = recover(repo, workspace)
        if landed and landed.action == "promote":
            return landed.tag
    verdicts, branch = checked(lambda: blessed_verdicts(workspace), lambda: preflight(repo, remote))
    sha256 = verdicts["convert"]["candidate_sha256"]
    done = already_promoted(repo, remote, branch, release_path, sha256)
    if done:
        print(f"already promoted: {done} holds {sha256[:12]} on {remote}/{branch}; nothing to do")
        return done
    version = next_version(repo, settings["tag_prefix"])
    tag = f"{settings['tag_prefix']}{version}"
    parity, gate = verdicts["parity"]["measures"], verdicts["gate"]["measures"]
    message = (
        f"Promote {tag}: model {sha256[:12]} ({verdicts['convert']['quantization']})\n\n"
        f"parity max |dp| {parity['max_abs_diff']['value']:.2e}, top-1 agreement "
        f"{parity['top1_agreement']['value']:.3f}; gate "
        + ", ".join(f"{name} {m['value']}" for name, m in gate.items())
    )
    changed_by_pipeline = pipeline_changes(repo)  # preflight refused any other change
    steps = [
        f"write {release_path}/ ({MODEL_NAME}, {GOLDEN_NAME}, {MANIFEST_NAME}) for {sha256[:12]}",
        f"commit on {branch}, {MODEL_NAME} and {GOLDEN_NAME} through Git LFS: "
        + message.splitlines()[0]
        + (f" (with {', '.join(changed_by_pipeline)})" if changed_by_pipeline else ""),
        f"tag {tag}",
        f"upload the release's LFS objects to {remote} ({repo.remote_url(remote)})",
        f"verify from a fresh repository that {remote} holds them",
        f"push {branch} and {tag} to {remote} atomically",
    ]
    if dry_run:
        print("dry run, nothing changed; would:\n  " + "\n  ".join(steps))
        return tag

    def write_files() -> list[str]:
        partial = scratch_dir(workspace) / "bundle"
        shutil.rmtree(partial, ignore_errors=True)
        write_release(workspace, partial, version, tag, repo.head(), params)
        shutil.rmtree(workspace.release_dir, ignore_errors=True)
        os.replace(partial, workspace.release_dir)
        return pipeline_changes(repo)

    journal = Journal(
        action="promote",
        branch=branch,
        remote=remote,
        old_head=repo.head(),
        tag=tag,
        release_path=release_path,
        index_tree=repo.run("write-tree").strip(),
        restore_paths=[release_path, ".gitattributes"],
    )
    release(repo, workspace, journal, message, write_files, float(settings["push_timeout_seconds"]))
    print(f"promoted {tag}: {sha256} pushed to {remote}/{branch}")
    return tag


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

    journal = Journal(
        action="rollback",
        branch=branch,
        remote=remote,
        old_head=repo.head(),
        tag=None,
        release_path=release_path,
        index_tree=repo.run("write-tree").strip(),
        restore_paths=[release_path, ".gitattributes", *[p.rstrip("/") for p in restored]],
    )
    timeout = float(params["promote"]["push_timeout_seconds"])
    release(repo, workspace, journal, message, write_files, timeout)
    sha256 = sha256_of(workspace.release_dir / MODEL_NAME)
    print(f"rolled back to {tag}: {sha256} pushed to {remote}/{branch}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.promote",
        description="Promote build/candidate/ to release/ through Git LFS, if every gate "
        "(convert, parity, gate) passed for exactly this candidate and the current inputs.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen, change nothing"
    )
    parser.add_argument(
        "--remote", help="git remote to push to (default: promote.remote in params.yaml)"
    )
    parser.add_argument("--rollback", metavar="TAG", help="restore the release of an earlier tag")
    args = parser.parse_args(argv)
    workspace = Workspace.from_env()
    try:
        if args.rollback:
            rollback(workspace, args.rollback, args.remote, args.dry_run)
        else:
            promote(workspace, args.remote, args.dry_run)
    except (PromotionRefused, GitError) as refusal:
        print(f"promotion refused: {refusal}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
