"""The steps of a release, in an order that never needs the remote undone, and a journal that
lets the next run finish or cleanly undo a release that was killed half-way.

Order: write release/ and commit it locally with its tag; upload exactly the release's LFS
objects; prove the remote holds them from a scratch clone; push branch and tag atomically.
Until that last push nothing on the remote names the release, so any failure or kill before
it is undone locally alone. Scratch lives in build/promote/ (ignored), cleaned on every run.
"""

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.release.dvc_data import undo_data
from pipeline.release.git_repo import GitRepo
from pipeline.release.orphans import RUN_ID_ENV
from service.errors import Refusal

STEPS = ("write", "commit", "tag", "upload", "verify", "push")


# Git LFS's filters for promote's own git commands, so nothing depends on a global or system
# `git lfs install` (a fresh laptop or CI runner has neither) and no hook is installed.
LFS_FILTER = (
    "-c",
    "filter.lfs.clean=git-lfs clean -- %f",
    "-c",
    "filter.lfs.smudge=git-lfs smudge -- %f",
    "-c",
    "filter.lfs.process=git-lfs filter-process",
    "-c",
    "filter.lfs.required=true",
)


def enable_lfs(repo: GitRepo) -> None:
    """LFS's filters in the repository's own config (no hooks: promote uploads the release's
    objects itself), so `git status` and checkouts read release/ right without global config."""
    for index in range(1, len(LFS_FILTER), 2):
        key, value = LFS_FILTER[index].split("=", 1)
        repo.run("config", "--local", key, value)


class ReleaseFailed(Refusal):
    """A release step failed; local changes were undone and the remote's refs never moved."""


@dataclass
class Journal:
    """What an in-flight release changed: enough to finish it or undo it after a kill."""

    action: str  # "promote" | "rollback"
    branch: str
    remote: str
    old_head: str
    tag: str | None
    release_path: str
    index_tree: str  # the index as it was (`git write-tree`), restored exactly on undo
    restore_paths: list[str]  # working-tree paths the release rewrites
    commit: str | None = None
    step: str = "start"
    # Carried by every git process the release starts (orphans.RUN_ID_ENV), so the next run
    # can find the ones a kill left running.
    run_id: str = ""
    # What the remote's branch named just before the push ("" for no branch; None before the
    # push step): a push that cannot land any more is told from one that still may.
    remote_before: str | None = None
    push_started_at: float | None = None  # time.time() just before the push
    push_timeout_seconds: float = 300.0
    # DVC data a rollback checks out: the .dvc files (among restore_paths) whose data an undo
    # checks out again once git has put them back, and the outputs it created, which go.
    dvc_checkouts: list[str] = field(default_factory=list)
    dvc_created: list[str] = field(default_factory=list)

    @classmethod
    def begin(
        cls,
        repo: GitRepo,
        action: str,
        branch: str,
        remote: str,
        tag: str | None,
        release_path: str,
        extra_restore_paths: tuple[str, ...] = (),
    ) -> "Journal":
        """A journal for a release starting now: HEAD and the index as they are."""
        return cls(
            action=action,
            branch=branch,
            remote=remote,
            old_head=repo.head(),
            tag=tag,
            release_path=release_path,
            index_tree=repo.run("write-tree").strip(),
            restore_paths=[release_path, ".gitattributes", *extra_restore_paths],
            run_id=os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex,
        )

    @staticmethod
    def path(workspace: Workspace) -> Path:
        return scratch_dir(workspace) / "journal.json"

    def save(self, workspace: Workspace) -> None:
        path = self.path(workspace)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        os.replace(partial, path)

    @classmethod
    def load(cls, workspace: Workspace) -> "Journal | None":
        path = cls.path(workspace)
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def scratch_dir(workspace: Workspace) -> Path:
    return workspace.build_dir / "promote"


def checkpoint(workspace: Workspace, journal: Journal, step: str) -> None:
    """Record that `step` is done: a run killed after it is finished or undone from there."""
    journal.step = step
    journal.save(workspace)


def clean_scratch(workspace: Workspace, keep_journal: bool) -> None:
    """Remove scratch clones and partial bundles left by an earlier run."""
    folder = scratch_dir(workspace)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if keep_journal and child.name == "journal.json":
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def restore_local(repo: GitRepo, journal: Journal) -> None:
    """Put HEAD, the tag, the index and the paths the release rewrote back as they were, and
    the DVC data a rollback checked out as the .dvc files put back say.

    Other working-tree files are untouched: promotion refused any change but the pipeline's
    own (dvc.lock, reports/), and those stay as the pipeline wrote them.
    """
    if journal.tag and repo.ref_sha(f"refs/tags/{journal.tag}") not in (None, journal.old_head):
        repo.run("tag", "-d", journal.tag)
    repo.run("reset", "-q", "--soft", journal.old_head)
    repo.run("read-tree", journal.index_tree)
    # release/ is promote's alone: clear it so no file the release added lingers.
    shutil.rmtree(repo.root / journal.release_path, ignore_errors=True)
    for path in journal.restore_paths:
        if repo.run("ls-files", "--", path).strip():
            repo.run(*LFS_FILTER, "checkout", "--", path)
        elif (repo.root / path).is_file():
            (repo.root / path).unlink()
    undo_data(repo.root, journal.dvc_checkouts, journal.dvc_created)


def upload_objects(repo: GitRepo, remote: str, oids: list[str], timeout: float) -> None:
    """Upload exactly the release's LFS objects; other files' objects never matter here."""
    repo.run("lfs", "push", "--object-id", remote, *oids, timeout=timeout)
