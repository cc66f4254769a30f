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

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.bundle import (
    GOLDEN_NAME,
    PromotionRefused,
    blessed_verdicts,
    tracked_inputs,
    write_release,
)
from pipeline.release.git_repo import GitError, GitRepo
from pipeline.release.steps import Journal, recover, scratch_dir
from pipeline.release.transaction import checked, pipeline_changes, preflight, release
from pipeline.rollback import rollback
from service.bundle import MANIFEST_NAME, MODEL_NAME


def next_version(repo: GitRepo, tag_prefix: str) -> int:
    numbers = [
        int(m.group(1))
        for tag in repo.tags(f"{tag_prefix}*")
        if (m := re.fullmatch(re.escape(tag_prefix) + r"(\d+)", tag))
    ]
    return max(numbers, default=0) + 1


def already_promoted(repo: GitRepo, remote: str, branch: str, release_path: str, sha256: str):
    """The tag under which HEAD already released this candidate to the remote, or None."""
    manifest = repo.run("show", f"HEAD:{release_path}/{MANIFEST_NAME}", check=False)
    if not manifest or json.loads(manifest).get("sha256") != sha256:
        return None
    if repo.remote_ref_sha(remote, f"refs/heads/{branch}") != repo.head():
        return None
    tags = repo.run("tag", "--points-at", "HEAD").split()
    return tags[0] if tags else None


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
    verdicts, branch, _ = checked(
        lambda: blessed_verdicts(workspace),
        lambda: preflight(repo, remote),
        lambda: tracked_inputs(workspace),
    )
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
        if Journal.load(workspace):
            steps.insert(0, "first finish or undo the interrupted release in build/promote/")
        print("dry run, nothing changed; would:\n  " + "\n  ".join(steps))
        return tag

    def write_files() -> list[str]:
        partial = scratch_dir(workspace) / "bundle"
        shutil.rmtree(partial, ignore_errors=True)
        write_release(workspace, partial, version, tag, repo.head(), params)
        shutil.rmtree(workspace.release_dir, ignore_errors=True)
        os.replace(partial, workspace.release_dir)
        return pipeline_changes(repo)

    journal = Journal.begin(repo, "promote", branch, remote, tag, release_path)
    release(repo, workspace, journal, message, write_files, float(settings["push_timeout_seconds"]))
    print(f"promoted {tag}: {sha256} pushed to {remote}/{branch}")
    return tag


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
