"""Roll the release back to an earlier tag: release/, reports/ and dvc.lock exactly as they were
at that tag, the params.yaml sections that built its model, and the model's inputs (the files
`inputs` names there, in git or through their .dvc files with the data), so the next
`dvc repro` rebuilds that model. Committed and pushed like a promotion (no new tag: the
release is that tag again).

    python -m pipeline.rollback model-v3 [--dry-run] [--remote NAME]
"""

import argparse
import json
import os
import shutil
import sys

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.deployment import require_deployed_as_recorded
from pipeline.release.docs_refresh import DRY_RUN_STEP
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import LFS_FILTER, GitRepo
from pipeline.release.lock import release_lock
from pipeline.release.params_sections import sections_that_built, with_sections
from pipeline.release.pending import UNDO, Pending
from pipeline.release.recovery import recover
from pipeline.release.rollback_inputs import InputsRestore, inputs_at, restore_data
from pipeline.release.steps import Journal
from pipeline.release.transaction import PIPELINE_OWNED, object_id, preflight, release
from service.bundle import MANIFEST_NAME, MODEL_NAME, sha256_of
from service.errors import Refusal


def release_tags(repo: GitRepo, tag_prefix: str, release_path: str) -> list[str]:
    """The tags that hold a release (its manifest), oldest first: those one can roll back to."""
    tags = repo.run("tag", "--list", f"{tag_prefix}*", "--sort=v:refname").split()
    manifest = f"{release_path}/{MANIFEST_NAME}"
    return [tag for tag in tags if repo.run("ls-tree", "--name-only", tag, "--", manifest)]


def params_at(repo: GitRepo, workspace: Workspace, tag: str, release_path: str) -> str | None:
    """params.yaml as it builds `tag`'s model: today's file with the sections that built it put
    back as they were at the tag; None when the tag has no params.yaml."""
    params_path = os.path.relpath(workspace.params_path, repo.root)
    old_text = repo.run("show", f"{tag}:{params_path}", check=False)
    if not old_text:
        return None
    manifest = json.loads(repo.run("show", f"{tag}:{release_path}/{MANIFEST_NAME}"))
    locks = repo.run("ls-tree", "-r", "--name-only", tag).splitlines()
    lock_texts = [repo.run("show", f"{tag}:{path}") for path in locks if path.endswith("dvc.lock")]
    sections = sections_that_built(manifest, lock_texts)
    return with_sections(workspace.params_path.read_text(), old_text, sections)


def require_gated_plan(repo: GitRepo, workspace: Workspace, tag: str, release_path: str) -> None:
    """Refuse a rollback to a release whose gate passed another plan than render.yaml deploys
    now; a release that records no gated plan is let through with a warning."""
    manifest = json.loads(repo.run("show", f"{tag}:{release_path}/{MANIFEST_NAME}"))
    record = manifest.get("deployment") or {}
    gate_report = os.path.relpath(workspace.report_path("gate"), repo.root)
    if record.get("gated"):
        require_deployed_as_recorded(record, tag, workspace.render_yaml_path)
        return
    print(
        f"warning: {tag}'s manifest does not record the plan its gate passed (no `deployment`), "
        "so the rollback cannot check that render.yaml deploys it as gated: compare its "
        f"{gate_report} (`git show {tag}:{gate_report}`) with render.yaml",
        file=sys.stderr,
    )


def rollback(workspace: Workspace, tag: str, remote: str | None, dry_run: bool) -> None:
    """Restore release/, reports/, dvc.lock, the params and the inputs that built `tag`;
    commit, push."""
    settings = load_params(workspace).promote
    remote = remote or settings.remote
    repo = GitRepo.containing(workspace.root)
    release_path = os.path.relpath(workspace.release_dir, repo.root)
    with release_lock(repo, f"rollback to {tag}"):
        releases = ", ".join(release_tags(repo, settings.tag_prefix, release_path)) or "none yet"
        if tag not in repo.tags(tag):
            raise PromotionRefused(f"there is no tag {tag!r}; releases: {releases}")
        if not repo.run("ls-tree", "--name-only", tag, "--", f"{release_path}/{MANIFEST_NAME}"):
            raise PromotionRefused(
                f"{tag} holds no release ({release_path}/{MANIFEST_NAME} is missing there): it "
                f"predates the first release; roll back to one of: {releases}"
            )
        require_gated_plan(repo, workspace, tag, release_path)
        pending = Pending.read(repo, workspace) if dry_run else None
        if not dry_run:
            recover(repo, workspace, float(settings.orphan_wait_seconds))
        # A rollback rewrites dvc.lock, reports/, params.yaml and the inputs: uncommitted edits
        # would be lost (inputs_at checks the DVC-tracked data itself). A dry run checks the
        # tree as the real run finds it, after undoing an interrupted release.
        undone = pending.undone_paths if pending else ()
        branch = preflight(repo, remote, owned_may_change=False, undone_paths=undone)
        # The commit the real run starts from: an undone release's commit is gone by then.
        head = pending.journal.old_head if pending and pending.outcome == UNDO else repo.head()
        first = f"first {pending.in_words()}\n" if pending else ""
        restored = [
            path
            for path in (release_path, *PIPELINE_OWNED)
            if repo.run("ls-tree", "--name-only", tag, "--", path.rstrip("/")).strip()
        ]
        params_text = params_at(repo, workspace, tag, release_path)
        params_change = params_text is not None and params_text != workspace.params_path.read_text()
        inputs = inputs_at(repo, workspace, tag, params_text) if params_text else InputsRestore(tag)
        same = all(object_id(repo, head, path) == object_id(repo, tag, path) for path in restored)
        remote_head = repo.remote_ref_sha(remote, f"refs/heads/{branch}")
        if same and not params_change and not inputs.written() and remote_head == head:
            print(
                f"{'dry run, nothing changed; would ' + first if first else ''}already at {tag}: "
                f"{', '.join(restored)}, and the params and inputs that built it, match it on "
                f"{remote}/{branch}"
            )
            return
        message = f"Roll back the release to {tag}"
        params_path = os.path.relpath(workspace.params_path, repo.root)
        if dry_run:
            files = [
                *restored,
                *([f"{params_path} (the sections that built {tag})"] if params_change else []),
                *inputs.describe(),
            ]
            print(
                f"dry run, nothing changed; would {first}restore from {tag}:\n  "
                + "\n  ".join(files)
                + (f"\n{inputs.left()}" if inputs.left() else "")
                + f"\nthen {DRY_RUN_STEP}, commit '{message}' on {branch} and push it to {remote}"
            )
            return

        def write_files() -> list[str]:
            # Exactly as at the tag: files added since (a later release's reports) go too.
            repo.run("rm", "-r", "-q", "--ignore-unmatch", "--", *restored)
            shutil.rmtree(workspace.release_dir, ignore_errors=True)
            repo.run(*LFS_FILTER, "checkout", tag, "--", *restored, *inputs.from_tag())  # stages
            written = restore_data(repo, workspace, inputs)
            if params_change:
                workspace.params_path.write_text(params_text)
                written.append(params_path)
            return written

        restored_paths = (*(path.rstrip("/") for path in restored), params_path, *inputs.written())
        journal = Journal.begin(
            repo, "rollback", branch, remote, None, release_path, restored_paths
        )
        journal.dvc_checkouts = [data.dvc_file for data in inputs.tracked if data.at_head]
        journal.dvc_created = [out for data in inputs.tracked for out in data.created]
        timeout = float(settings.push_timeout_seconds)
        pushed = release(
            repo,
            workspace,
            journal,
            message,
            write_files,
            timeout,
            float(settings.orphan_wait_seconds),
        )
    sha256 = sha256_of(workspace.release_dir / MODEL_NAME)
    print(f"rolled back to {tag}: {sha256} {'pushed to' if pushed else 'on'} {remote}/{branch}")
    if params_change:
        print(f"params.yaml's sections that built {tag} are restored")
    for line in inputs.describe():
        print(f"restored {tag}'s input: {line}")
    if inputs.left():
        print(inputs.left())
    print(
        f"next: `dvc repro` rebuilds {tag}'s model; `python -m pipeline.summary` shows its "
        f"verdicts; `python -m pipeline.promote` then finds {tag} already released"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.rollback",
        description="Restore the release of an earlier tag (release/, reports/, dvc.lock, the "
        "params.yaml sections and the model's inputs that built it: files in git, .dvc files "
        "and their data), commit it and push it.",
    )
    parser.add_argument("tag", nargs="?", help="the release tag to return to, e.g. model-v1")
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen, change nothing"
    )
    parser.add_argument(
        "--remote", help="git remote to push to (default: promote.remote in params.yaml)"
    )
    args = parser.parse_args(argv)
    workspace = Workspace.from_env()
    try:
        if not args.tag:
            repo = GitRepo.containing(workspace.root)
            release_path = os.path.relpath(workspace.release_dir, repo.root)
            prefix = load_params(workspace).promote.tag_prefix
            tags = release_tags(repo, prefix, release_path)
            raise PromotionRefused(
                "give the release tag to return to, e.g. `python -m pipeline.rollback "
                f"{tags[-2] if len(tags) > 1 else 'model-v1'}`; releases: "
                + (", ".join(tags) or "none yet")
            )
        rollback(workspace, args.tag, args.remote, args.dry_run)
    except Refusal as refusal:
        print(f"rollback refused: {refusal}", file=sys.stderr)
        return 1 if args.tag else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
