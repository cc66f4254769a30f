"""Promotion for real: git-lfs, a local bare remote, and fresh clones that prove what landed."""

import json
import re
import shutil
import subprocess
import sys

import pytest
from clones import fresh_clone, git
from release_repos import (
    build_candidate,
    promote,
    refuse,
    snapshot,
)

from pipeline.paths import REPO_ROOT
from pipeline.verdicts import read_json, write_json
from service.bundle import LFS_POINTER_PREFIX, sha256_of

pytestmark = pytest.mark.slow


def test_promotion_lands_the_lfs_object_on_the_remote(release_repo, tmp_path):
    workspace, remote = release_repo
    candidate_sha256 = sha256_of(workspace.candidate_dir / "model.tflite")
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert "promoted model-v1" in completed.stdout
    clone = fresh_clone(remote, tmp_path / "clone", "model-v1")
    model = clone / "release" / "model.tflite"
    assert not model.read_bytes().startswith(LFS_POINTER_PREFIX)
    assert sha256_of(model) == candidate_sha256
    assert (
        remote / "lfs" / "objects" / candidate_sha256[:2] / candidate_sha256[2:4] / candidate_sha256
    ).is_file()
    assert "release/model.tflite" in git(clone, "lfs", "ls-files", "--name-only")
    manifest = json.loads((clone / "release" / "manifest.json").read_text())
    assert manifest["version"] == "v1" and manifest["sha256"] == candidate_sha256
    assert set(manifest["verdicts"]) == {"convert", "parity", "gate"}
    assert manifest["git_commit"] and manifest["params"]["convert"]["quantization"] == "none"
    assert len(manifest["golden"]["labels"]) == 3
    assert sha256_of(clone / "release" / "golden.npz") == manifest["golden"]["sha256"]


def test_the_release_commit_carries_the_verdicts_a_pull_request_compares_against(
    release_repo, tmp_path
):
    # As in this project: the stage metrics are in git, so `dvc metrics diff main` has a base.
    workspace, remote = release_repo
    root = workspace.root
    (root / ".gitignore").write_text("build/\nreports/*\n!reports/gate.json\n")
    gate_report = read_json(workspace.report_path("gate"))
    write_json(workspace.report_path("gate"), {**gate_report, "candidate_sha256": "0" * 64})
    git(root, "add", ".gitignore", "reports/gate.json")
    git(root, "commit", "-qm", "an earlier release's verdict")
    write_json(workspace.report_path("gate"), gate_report)  # the pipeline rewrote it
    git(root, "add", "reports/gate.json")  # and staged it, as DVC's autostage does dvc.lock
    assert "(with reports/gate.json)" in promote(workspace, "--dry-run").stdout
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    clone = fresh_clone(remote, tmp_path / "clone", "model-v1")
    committed = json.loads((clone / "reports" / "gate.json").read_text())
    assert committed["candidate_sha256"] == sha256_of(workspace.candidate_dir / "model.tflite")
    # The release says why it shipped: its report against what the branch held before.
    report = (clone / "release" / "release.md").read_text()
    assert report.startswith("## ✅ Release report: PASSED")
    # The gate's real verdict: the same peak before and after, so no change.
    assert re.search(
        r"\| gate \| peak_memory_mb \| ≤ 450 \| ([\d.]+) \| \1 \| 0 \| unchanged \|", report
    )
    assert "| parity | max_abs_diff | ≤ 0.0001 | new |" in report
    assert (clone / "release" / "release.html").read_text().startswith("<!doctype html>")
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""


def test_dry_run_shows_the_plan_and_changes_nothing(release_repo):
    workspace, remote = release_repo
    before = snapshot(workspace, remote)
    completed = promote(workspace, "--dry-run")
    assert completed.returncode == 0, completed.stderr
    assert "tag model-v1" in completed.stdout and "push main and model-v1" in completed.stdout
    assert snapshot(workspace, remote) == before


def test_an_input_neither_git_nor_dvc_tracks_is_refused(release_repo):
    workspace, remote = release_repo
    # Committed without its labels: CI's `dvc repro` could not rebuild this candidate.
    git(workspace.root, "rm", "-q", "--cached", "inputs/labels.txt")
    (workspace.root / ".gitignore").write_text("build/\ninputs/labels.txt\n")
    git(workspace.root, "commit", "-qam", "labels kept local")
    reason = refuse(workspace, remote)
    assert "inputs.labels inputs/labels.txt is tracked by neither git nor DVC" in reason
    assert "python -m pipeline.init" in reason


def test_a_dirty_tree_is_refused(release_repo):
    workspace, remote = release_repo
    with open(workspace.params_path, "a") as params:
        params.write("# edited\n")
    assert "uncommitted changes (params.yaml)" in refuse(workspace, remote)


def test_missing_git_lfs_is_refused(release_repo, tmp_path):
    workspace, remote = release_repo
    bin_dir = tmp_path / "bin-without-lfs"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    assert "git-lfs is not installed" in refuse(workspace, remote, path=str(bin_dir))


def test_an_unreachable_remote_is_refused(release_repo, tmp_path):
    workspace, remote = release_repo
    git(workspace.root, "remote", "set-url", "origin", str(tmp_path / "nowhere.git"))
    assert "remote 'origin' is unreachable" in refuse(workspace, remote)


def test_a_remote_that_refuses_the_push_leaves_everything_untouched(release_repo):
    workspace, remote = release_repo
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    # git-lfs uploads the object before the remote judges the refs, and LFS has no delete:
    # an unreferenced, content-addressed object may stay behind. Every ref is as it was.
    reason = refuse(workspace, remote, unchanged=("head", "tags", "status", "remote_refs"))
    assert "protected branch" in reason  # git's own words, not only its last line
    assert "nothing was pushed: the remote's branches and tags are as they were" in reason
    assert not workspace.release_dir.exists()


def test_rollback_restores_an_earlier_release(release_repo, tmp_path):
    workspace, remote = release_repo
    first_sha256 = sha256_of(workspace.candidate_dir / "model.tflite")
    assert promote(workspace).returncode == 0
    second_sha256 = build_candidate(workspace, "float16")
    assert second_sha256 != first_sha256
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert "promoted model-v2" in completed.stdout
    completed = promote(workspace, "--rollback", "model-v1")
    assert completed.returncode == 0, completed.stderr
    clone = fresh_clone(remote, tmp_path / "clone")
    assert sha256_of(clone / "release" / "model.tflite") == first_sha256
    assert "Roll back the release to model-v1" in git(clone, "log", "-1", "--format=%s")


def test_rollback_to_an_unknown_tag_is_refused(release_repo):
    workspace, remote = release_repo
    assert "there is no tag 'model-v9'" in refuse(workspace, remote, "--rollback", "model-v9")


def test_help_describes_the_command():
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.promote", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0
    assert "--dry-run" in completed.stdout and "--rollback" in completed.stdout
