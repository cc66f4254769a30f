"""Promote the candidate that passed every gate: release/ committed through Git LFS, tagged
and pushed, or nothing changed at all.

    python -m pipeline.promote [--dry-run] [--remote NAME]
    python -m pipeline.promote --rollback model-v3
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pipeline.git_repo import GitError, GitRepo, require_git_lfs
from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release_bundle import GOLDEN_NAME, PromotionRefused, blessed_verdicts, write_release
from service.bundle import LFS_POINTER_PREFIX, MANIFEST_NAME, MODEL_NAME, sha256_of

LFS_TRACKED = (MODEL_NAME, GOLDEN_NAME)
# Files the pipeline itself rewrites: a promotion commits them rather than refusing on them.
# The stage metrics under reports/ are in git (DVC's `cache: false`) so that main holds the
# promoted candidate's verdicts, which is what a pull request's `dvc metrics diff` compares to.
PIPELINE_OWNED = ("dvc.lock", "reports/")


def lfs_attributes(release_path: str) -> list[str]:
    return [f"{release_path}/{name} filter=lfs diff=lfs merge=lfs -text" for name in LFS_TRACKED]


def next_version(repo: GitRepo, tag_prefix: str) -> int:
    numbers = [
        int(m.group(1))
        for tag in repo.tags(f"{tag_prefix}*")
        if (m := re.fullmatch(re.escape(tag_prefix) + r"(\d+)", tag))
    ]
    return max(numbers, default=0) + 1


def preflight(repo: GitRepo, remote: str, release_path: str) -> str:
    """Refuse before touching anything: git-lfs, a clean tree, a reachable remote."""
    require_git_lfs()
    dirty = repo.dirty_paths(ignore=PIPELINE_OWNED)
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


def stage_release(repo: GitRepo, release_path: str) -> None:
    """Track the bundle through LFS and stage it; refuse if git would store a plain blob."""
    repo.run("lfs", "install", "--local")
    attributes_path = repo.root / ".gitattributes"
    lines = attributes_path.read_text().splitlines() if attributes_path.exists() else []
    missing = [line for line in lfs_attributes(release_path) if line not in lines]
    if missing:
        attributes_path.write_text("\n".join([*lines, *missing]) + "\n")
    repo.run("add", ".gitattributes", release_path)
    owned = repo.run("ls-files", "--", *PIPELINE_OWNED).splitlines()
    if owned:
        repo.run("add", "--update", "--", *owned)
    for name in LFS_TRACKED:
        if not repo.staged_blob(f"{release_path}/{name}").startswith(LFS_POINTER_PREFIX):
            raise PromotionRefused(
                f"{release_path}/{name} would be committed as a plain blob, not through Git LFS; "
                "check .gitattributes and `git lfs install`"
            )


def verify_remote(repo: GitRepo, remote: str, ref: str, release_path: str, sha256: str) -> None:
    """A fresh clone of the remote at `ref` must hold the LFS object with the right sha256."""
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "clone"
        url = repo.remote_url(remote)
        GitRepo(Path(scratch)).run("clone", "-q", "--depth", "1", "--branch", ref, url, str(clone))
        GitRepo(clone).run("lfs", "pull")
        model = clone / release_path / MODEL_NAME
        if not model.is_file() or sha256_of(model) != sha256:
            raise PromotionRefused(
                f"a fresh clone of {remote} does not yield the promoted model ({sha256[:12]}); "
                "the LFS object did not reach the remote"
            )


class ReleaseTransaction:
    """Changes to the repository that are undone whole if any later step fails."""

    def __init__(self, repo: GitRepo, release_dir: Path) -> None:
        self.repo, self.release_dir = repo, release_dir
        self.old_head = repo.head()
        self.backup = Path(tempfile.mkdtemp(prefix="release-backup-"))
        self.attributes = repo.root / ".gitattributes"
        self.had_release = release_dir.exists()
        if self.had_release:
            shutil.copytree(release_dir, self.backup / "release")
        if self.attributes.exists():
            shutil.copy2(self.attributes, self.backup / "gitattributes")
        self.tag: str | None = None

    def undo(self) -> None:
        if self.tag:
            self.repo.run("tag", "-d", self.tag, check=False)
        self.repo.run("reset", "-q", "--mixed", self.old_head, check=False)
        shutil.rmtree(self.release_dir, ignore_errors=True)
        if self.had_release:
            shutil.copytree(self.backup / "release", self.release_dir)
        if (self.backup / "gitattributes").exists():
            shutil.copy2(self.backup / "gitattributes", self.attributes)
        else:
            self.attributes.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.backup, ignore_errors=True)


def publish(repo, transaction, remote, branch, message, tag, release_path, sha256, timeout):
    """Commit, tag, push atomically and verify; undo everything local if any step fails."""
    try:
        stage_release(repo, release_path)
        repo.run("commit", "-q", "-m", message)
        if tag:
            repo.run("tag", "-a", tag, "-m", message)
            transaction.tag = tag
        refs = [f"HEAD:refs/heads/{branch}"] + ([f"refs/tags/{tag}"] if tag else [])
        repo.run("push", "--atomic", remote, *refs, timeout=timeout)
    except (GitError, PromotionRefused) as error:
        transaction.undo()
        raise PromotionRefused(f"{error}; nothing was committed, tagged or pushed") from None
    try:
        verify_remote(repo, remote, tag or branch, release_path, sha256)
    except (GitError, PromotionRefused) as error:
        # The refs reached the remote but the model did not: put the remote back as it was.
        repo.run(
            "push", "--force", remote, f"{transaction.old_head}:refs/heads/{branch}", check=False
        )
        if tag:
            repo.run("push", remote, f":refs/tags/{tag}", check=False)
        transaction.undo()
        raise PromotionRefused(f"{error}; the remote and local repository were restored") from None
    transaction.close()


def promote(workspace: Workspace, remote: str | None, dry_run: bool) -> str:
    """Promote build/candidate; the new tag. Raises PromotionRefused with every reason."""
    params = load_params(workspace)
    settings = params["promote"]
    remote = remote or settings["remote"]
    repo = GitRepo.containing(workspace.root)
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    verdicts = blessed_verdicts(workspace)
    branch = preflight(repo, remote, release_path)
    version = next_version(repo, settings["tag_prefix"])
    tag = f"{settings['tag_prefix']}{version}"
    sha256 = verdicts["convert"]["candidate_sha256"]
    parity, gate = verdicts["parity"]["measures"], verdicts["gate"]["measures"]
    message = (
        f"Promote {tag}: model {sha256[:12]} ({verdicts['convert']['quantization']})\n\n"
        f"parity max |dp| {parity['max_abs_diff']['value']:.2e}, top-1 agreement "
        f"{parity['top1_agreement']['value']:.3f}; gate "
        + ", ".join(f"{name} {m['value']}" for name, m in gate.items())
    )
    changed_by_pipeline = repo.dirty_paths()  # preflight refused any other change
    steps = [
        f"write {release_path}/ ({MODEL_NAME}, {GOLDEN_NAME}, {MANIFEST_NAME}) for {sha256[:12]}",
        f"track {release_path}/{MODEL_NAME} and {GOLDEN_NAME} through Git LFS",
        f"commit on {branch}: {message.splitlines()[0]}"
        + (f" (with {', '.join(changed_by_pipeline)})" if changed_by_pipeline else ""),
        f"tag {tag}",
        f"push {branch} and {tag} to {remote} ({repo.remote_url(remote)}) atomically",
        f"verify a fresh clone of {remote} holds the model",
    ]
    if dry_run:
        print("dry run, nothing changed; would:\n  " + "\n  ".join(steps))
        return tag
    transaction = ReleaseTransaction(repo, workspace.release_dir)
    workspace.build_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="release-", dir=workspace.build_dir)) / "release"
    try:
        write_release(workspace, partial, version, tag, transaction.old_head, params)
    except Exception:
        shutil.rmtree(partial.parent, ignore_errors=True)
        transaction.close()
        raise
    shutil.rmtree(workspace.release_dir, ignore_errors=True)
    os.replace(partial, workspace.release_dir)
    partial.parent.rmdir()
    publish(
        repo,
        transaction,
        remote,
        branch,
        message,
        tag,
        release_path,
        sha256,
        float(settings["push_timeout_seconds"]),
    )
    print(f"promoted {tag}: {sha256} pushed to {remote}/{branch}")
    return tag


def rollback(workspace: Workspace, tag: str, remote: str | None, dry_run: bool) -> None:
    """Restore release/ as it was at `tag`, commit and push it the same way."""
    params = load_params(workspace)
    remote = remote or params["promote"]["remote"]
    repo = GitRepo.containing(workspace.root)
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    if tag not in repo.tags(tag):
        raise PromotionRefused(f"there is no tag {tag!r}; see `git tag --list 'model-v*'`")
    branch = preflight(repo, remote, release_path)
    message = f"Roll back the release to {tag}"
    if dry_run:
        print(
            f"dry run, nothing changed; would restore {release_path}/ from {tag}, commit "
            f"'{message}' on {branch} and push it to {remote}"
        )
        return
    transaction = ReleaseTransaction(repo, workspace.release_dir)
    try:
        repo.run("checkout", tag, "--", release_path)
        sha256 = sha256_of(workspace.release_dir / MODEL_NAME)
    except GitError as error:
        transaction.undo()
        raise PromotionRefused(str(error)) from None
    publish(
        repo,
        transaction,
        remote,
        branch,
        message,
        None,
        release_path,
        sha256,
        float(params["promote"]["push_timeout_seconds"]),
    )
    print(f"rolled back to {tag}: {sha256} pushed to {remote}/{branch}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.promote",
        description="Promote build/candidate/ to release/ through Git LFS, if every gate "
        "(convert, parity, gate) passed for exactly this candidate.",
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
