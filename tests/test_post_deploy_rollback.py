"""The post-deploy workflow's rollback step for real: `python -m pipeline.rollback` as the step
calls it, on a repository with two real releases pushed through Git LFS to a bare remote."""

import subprocess

import pytest
from clones import fresh_clone
from release_repos import promote
from workflow_runner import VENV_BIN, find_step, run_step

from pipeline.paths import WORKSPACE_ENV

pytestmark = pytest.mark.slow


def git(cwd, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_rollback_step_rolls_the_branch_back_and_pushes(release_repo, tmp_path):
    workspace, remote = release_repo
    root = workspace.root
    assert promote(workspace).returncode == 0
    # A second release of the same model: the service it ships with changed.
    (root / ".python-version").write_text("3.11\n")
    git(root, "add", ".python-version")
    git(root, "commit", "-qm", "pin the service's Python")
    completed = promote(workspace)
    assert completed.returncode == 0 and "promoted model-v2" in completed.stdout, completed.stderr
    # The runner's `make install` made .venv in the checkout, which git ignores there.
    (root / ".venv").symlink_to(VENV_BIN.parent)
    with (root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".venv\n")
    step = find_step("post-deploy.yml", "rollback", "roll back to the previous release")
    ran = run_step(
        step,
        root,
        tmp_path / "runner",
        {"TAG": "model-v1", "CHECKED_COMMIT": git(root, "rev-parse", "HEAD")},
        runner_env={WORKSPACE_ENV: str(root)},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "rolled back to model-v1" in ran.stdout
    clone = fresh_clone(remote, tmp_path / "clone")
    assert git(clone, "log", "-1", "--format=%s %an") == (
        "Roll back the release to model-v1 github-actions[bot]"
    )
    assert git(clone, "diff", "--stat", "model-v1", "HEAD", "--", "release") == ""
