"""Promote the candidate that passed every gate for the current inputs: release/ committed
through Git LFS, tagged and pushed, or the remote's refs untouched. No new version when the
release would serve what the current one serves.

    python -m pipeline.promote [--dry-run] [--remote NAME] [--gated-here]
    python -m pipeline.promote --rollback model-v3   (as python -m pipeline.rollback model-v3)
"""

import argparse
import os
import re
import shutil
import sys

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.bundle import (
    GOLDEN_NAME,
    blessed_verdicts,
    tracked_inputs,
    write_release,
)
from pipeline.release.deployment import deployed, require_gated_deployment
from pipeline.release.docs_refresh import DRY_RUN_STEP
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitRepo
from pipeline.release.lock import release_lock
from pipeline.release.pending import Pending
from pipeline.release.recovery import recover
from pipeline.release.remote_objects import (
    ensure_remote_objects,
    file_objects,
    release_objects,
    repairs_needed,
)
from pipeline.release.served import current_release, on_remote, serving_changes
from pipeline.release.steps import Journal, scratch_dir
from pipeline.release.transaction import checked, owned_file_changes, preflight, release
from pipeline.rollback import rollback
from pipeline.verdicts import produced_where, read_json
from service.bundle import MANIFEST_NAME, MODEL_NAME
from service.errors import Refusal


def next_version(repo: GitRepo, tag_prefix: str, undone: str | None = None) -> int:
    """The next release number; `undone` is a tag the run removes first (never reused)."""
    numbers = [
        int(m.group(1))
        for tag in repo.tags(f"{tag_prefix}*")
        if tag != undone and (m := re.fullmatch(re.escape(tag_prefix) + r"(\d+)", tag))
    ]
    return max(numbers, default=0) + 1


def already_serving(repo: GitRepo, workspace: Workspace, remote: str, branch: str):
    """(tag, release commit) of the current release when a release from HEAD would serve the
    same model, manifest and service as it does (and the remote holds it); None when there is
    something to ship."""
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    current = current_release(repo, release_path)
    if current is None:
        return None
    released, release_commit = current
    candidate = read_json(workspace.candidate_dir / MANIFEST_NAME)
    if serving_changes(repo, released, release_commit, candidate):
        return None
    if not on_remote(repo, release_commit, remote, branch):
        return None
    return released.get("tag") or release_commit[:12], release_commit


def place(where: dict | None) -> str:
    if not where:
        return "an unrecorded machine"
    return where.get("host", "?") + (f" in {where['ci_run']}" if where.get("ci_run") else "")


def gated_elsewhere(verdicts: dict) -> str | None:
    """Why the gate's verdict was not produced here (this host and CI run); None if it was."""
    where, here = verdicts["gate"].get("produced_on"), produced_where()
    if where == here:
        return None
    return (
        f"gate: its verdict was produced on {place(where)}, not here ({place(here)}); "
        "run `dvc repro -f -s gate` here first (--gated-here)"
    )


def promote(workspace: Workspace, remote: str | None, dry_run: bool, gated_here=False) -> str:
    """Promote build/candidate; the new tag. Raises PromotionRefused with every reason."""
    params = load_params(workspace)
    remote = remote or params.promote.remote
    repo = GitRepo.containing(workspace.root)
    with release_lock(repo, "promote"):
        return promote_locked(workspace, repo, params, remote, dry_run, gated_here)


def promote_locked(workspace, repo, params, remote, dry_run, gated_here) -> str:
    """promote() while holding the checkout's release lock."""
    settings = params.promote
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    timeout = float(settings.push_timeout_seconds)
    orphan_wait = float(settings.orphan_wait_seconds)
    pending = Pending.read(repo, workspace) if dry_run else None
    if pending and pending.finishes_the_promote:
        print(f"dry run, nothing changed; would {pending.in_words()}, and stop there")
        return pending.journal.tag
    if not dry_run:
        landed = recover(repo, workspace, orphan_wait)
        if landed and landed.action == "promote":
            return landed.tag
    verdicts, branch, _ = checked(
        lambda: blessed_verdicts(workspace),
        lambda: preflight(repo, remote, undone_paths=pending.undone_paths if pending else ()),
        lambda: tracked_inputs(workspace),
    )
    if gated_here and (elsewhere := gated_elsewhere(verdicts)):
        raise PromotionRefused(elsewhere)
    require_gated_deployment(verdicts["gate"], params.gate.service_env, workspace.render_yaml_path)
    sha256 = verdicts["convert"]["candidate_sha256"]
    done = already_serving(repo, workspace, remote, branch)
    if done:
        return serving_already(repo, workspace, remote, branch, done, sha256, timeout, dry_run)
    version = next_version(repo, settings.tag_prefix, pending and pending.undone_tag)
    tag = f"{settings.tag_prefix}{version}"
    parity, gate = verdicts["parity"]["measures"], verdicts["gate"]["measures"]
    message = (
        f"Promote {tag}: model {sha256[:12]} ({verdicts['convert']['quantization']})\n\n"
        f"parity max |dp| {parity['max_abs_diff']['value']:.2e}, top-1 agreement "
        f"{parity['top1_agreement']['value']:.3f}; gate "
        + ", ".join(f"{name} {m['value']}" for name, m in gate.items())
    )
    plan = deployed(workspace.render_yaml_path).plan
    changed_by_pipeline = owned_file_changes(repo)  # preflight refused any other change
    steps = [
        f"write {release_path}/ ({MODEL_NAME}, {GOLDEN_NAME}, {MANIFEST_NAME}) for {sha256[:12]}, "
        f"gated on plan {plan}, the plan render.yaml deploys",
        DRY_RUN_STEP,
        f"commit on {branch}, {MODEL_NAME} and {GOLDEN_NAME} through Git LFS: "
        + message.splitlines()[0]
        + (f" (with {', '.join(changed_by_pipeline)})" if changed_by_pipeline else ""),
        f"tag {tag}",
        f"upload the release's LFS objects to {remote} ({repo.remote_url(remote)})",
        f"verify from a fresh repository that {remote} holds them",
        f"push {branch} and {tag} to {remote} atomically",
    ]
    if dry_run:
        # The candidate's objects the remote already holds are not sent again: a corrupt one
        # is removed and sent at the verify step (or refused, on a server).
        candidate = file_objects(workspace.candidate_dir, release_path)
        repairs = repairs_needed(repo, workspace, remote, candidate, timeout)
        steps[4:4] = [repair.in_words(remote) for repair in repairs if repair.corrupt_copy]
        if pending:
            steps.insert(0, f"first {pending.in_words()}")
        print("dry run, nothing changed; would:\n  " + "\n  ".join(steps))
        return tag

    def write_files() -> list[str]:
        partial = scratch_dir(workspace) / "bundle"
        shutil.rmtree(partial, ignore_errors=True)
        write_release(workspace, partial, version, tag, repo.head(), params, verdicts)
        shutil.rmtree(workspace.release_dir, ignore_errors=True)
        os.replace(partial, workspace.release_dir)
        return owned_file_changes(repo)

    journal = Journal.begin(repo, "promote", branch, remote, tag, release_path)
    pushed = release(repo, workspace, journal, message, write_files, timeout, orphan_wait)
    where = "pushed to" if pushed else "on"
    print(f"promoted {tag}: {sha256} {where} {remote}/{branch}; Render deploys it on {plan}")
    return tag


def serving_already(repo, workspace, remote, branch, done, sha256, timeout, dry_run) -> str:
    """The current release serves the candidate: check that the remote serves its LFS objects,
    and repair them (a dry run says how) before saying there is nothing to do."""
    tag, release_commit = done
    objects = release_objects(
        repo, release_commit, os.path.relpath(workspace.release_dir, repo.root)
    )
    if dry_run:
        repairs = repairs_needed(repo, workspace, remote, objects, timeout)
        if repairs:
            print(
                f"dry run, nothing changed; {tag} is promoted, but {remote} does not serve its "
                "LFS objects; would:\n  " + "\n  ".join(r.in_words(remote) for r in repairs)
            )
            return tag
    else:
        ensure_remote_objects(repo, workspace, remote, objects, timeout)
    print(
        f"already promoted: {tag} holds {sha256[:12]} on {remote}/{branch}, and {remote} serves "
        "its LFS objects (fetched into a fresh repository and hashed); a release now would "
        "serve the same model, manifest and service, so no new version: nothing to do"
    )
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
    parser.add_argument(
        "--gated-here",
        action="store_true",
        help="refuse unless the gate's verdict was produced on this machine (and CI run)",
    )
    parser.add_argument("--rollback", metavar="TAG", help="restore the release of an earlier tag")
    args = parser.parse_args(argv)
    workspace = Workspace.from_env()
    try:
        if args.rollback:
            rollback(workspace, args.rollback, args.remote, args.dry_run)
        else:
            promote(workspace, args.remote, args.dry_run, args.gated_here)
    except Refusal as refusal:
        print(f"promotion refused: {refusal}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
