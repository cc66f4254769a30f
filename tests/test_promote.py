"""Promotion for real: git-lfs, a local bare remote, and fresh clones that prove what landed."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workspaces import DEMO_INPUT_FILES, make_workspace, run_stage

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.verdicts import read_json, write_json, write_verdict
from service.bundle import LFS_POINTER_PREFIX, sha256_of

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check
    ).stdout


def write_gate_verdict(workspace: Workspace, passed: bool = True, enforced: bool = True) -> None:
    """The gate stage's verdict for the current candidate, written as the gate writes it, on
    the plan, service environment and workers of the workspace's real gate verdict."""
    real = read_json(workspace.report_path("gate"))
    write_verdict(
        workspace,
        "gate",
        {
            **{key: real[key] for key in ("plan", "render_env", "figures") if key in real},
            "passed": passed,
            "enforced": enforced,
            "candidate_sha256": sha256_of(workspace.candidate_dir / "model.tflite"),
            "measures": {
                "peak_memory_mb": {"value": 120.0, "threshold": 450, "rule": "<=", "passed": passed}
            },
        },
    )


def build_candidate(workspace: Workspace, quantization: str) -> str:
    """Run the real convert and parity stages for `quantization`; the candidate's sha256."""
    params = yaml.safe_load(workspace.params_path.read_text())
    params["convert"]["quantization"] = quantization
    workspace.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(workspace.root, "commit", "-qam", f"quantization {quantization}")
    run_stage("pipeline.stages.convert", workspace)
    run_stage("pipeline.stages.parity", workspace)
    write_gate_verdict(workspace)
    return sha256_of(workspace.candidate_dir / "model.tflite")


def promote(workspace: Workspace, *args: str, path: str | None = None):
    env = {**os.environ, WORKSPACE_ENV: str(workspace.root)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pipeline.promote", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def snapshot(workspace: Workspace, remote: Path) -> dict:
    """Everything a refused promotion must leave as it was."""
    return {
        "head": git(workspace.root, "rev-parse", "HEAD"),
        "tags": git(workspace.root, "tag", "--list"),
        "status": git(workspace.root, "status", "--porcelain"),
        "remote_refs": git(remote, "for-each-ref"),
        "remote_lfs": listing(remote / "lfs") if (remote / "lfs").exists() else [],
        "release": listing(workspace.release_dir) if workspace.release_dir.exists() else [],
    }


@pytest.fixture
def release_repo(checked_workspace, gated_workspace, tmp_path):
    """A git repository with a bare remote and a real candidate that passed every gate."""
    return make_release_repo(checked_workspace, gated_workspace, tmp_path)


def make_release_repo(
    checked_workspace: Workspace, gated_workspace: Workspace, tmp_path: Path
) -> tuple[Workspace, Path]:
    """The release_repo fixture's work, for other test modules' own fixtures."""
    demo_workspace = checked_workspace
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    # The user's files live in the repository and are committed: promote refuses inputs that
    # neither git nor DVC tracks, since CI could not rebuild the candidate from them.
    inputs = {key: f"inputs/{name}" for key, name in DEMO_INPUT_FILES.items()}
    workspace = make_workspace(tmp_path / "repo", inputs={**inputs, "folder": "inputs"})
    root = workspace.root
    shutil.copy(gated_workspace.render_yaml_path, workspace.render_yaml_path)  # its plan
    shutil.copytree(demo_workspace.demo_dir, root / "inputs")
    (root / ".gitignore").write_text("build/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "release@example.com")
    git(root, "config", "user.name", "Release Engineer")
    git(root, "add", ".")
    git(root, "commit", "-qm", "project")
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "-u", "origin", "main")
    shutil.copytree(demo_workspace.candidate_dir, workspace.candidate_dir)
    workspace.parity_predictions_path.parent.mkdir(parents=True)
    shutil.copy(demo_workspace.parity_predictions_path, workspace.parity_predictions_path)
    workspace.reports_dir.mkdir()
    # The real verdicts (each stage run once per session on the same candidate and input
    # files), as each stage writes them here: the fingerprint names this workspace.
    for stage, source in (
        ("convert", demo_workspace),
        ("parity", demo_workspace),
        ("gate", gated_workspace),
    ):
        verdict = read_json(source.report_path(stage))
        verdict.pop("inputs_fingerprint", None)
        write_verdict(workspace, stage, verdict)
    for plot in demo_workspace.reports_dir.glob("parity_*.csv"):
        shutil.copy(plot, workspace.reports_dir / plot.name)
    return workspace, remote


def fresh_clone(remote: Path, destination: Path, ref: str = "main") -> Path:
    """A clone as a user on a fresh machine makes it: LFS enabled for that clone alone."""
    git(destination.parent, "clone", "-q", "--branch", ref, str(remote), str(destination))
    git(destination, "lfs", "install", "--local")
    git(destination, "lfs", "pull")
    return destination


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


def refuse(workspace, remote, *args, path=None, unchanged=None) -> str:
    before = snapshot(workspace, remote)
    completed = promote(workspace, *args, path=path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    after = snapshot(workspace, remote)
    for key in unchanged or before:
        assert after[key] == before[key], key
    return completed.stderr


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
