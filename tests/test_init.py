"""pipeline.init and input_tracking: a user's files copied into one folder that DVC tracks,
params.yaml pointed at them (comments kept), and inputs that CI could not get named."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.inputs.tracking import untracked_inputs
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace

pytestmark = pytest.mark.slow  # runs git and dvc


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with this project's params.yaml and nothing else."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO_ROOT / "params.yaml", root / "params.yaml")
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", "Init Test"],
        ["git", "config", "user.email", "init-test@example.com"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "core.autostage", "true"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "start"],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    return root


def user_files(folder: Path) -> dict[str, Path]:
    """Stand-ins for a user's files: init copies and tracks them, it does not load them."""
    folder.mkdir(parents=True)
    files = {
        "model": folder / "my_model.h5",
        "labels": folder / "classes.json",
        "heldout": folder / "test_set.npz",
        "normaliser": folder / "scaler.pkl",
    }
    for path in files.values():
        path.write_bytes(b"stand-in for " + path.name.encode())
    return files


def run_init(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.init", *args],
        cwd=root,
        env={**os.environ, WORKSPACE_ENV: str(root)},
        capture_output=True,
        text=True,
    )


def test_init_copies_tracks_and_points_params_at_the_files(repo, tmp_path):
    files = user_files(tmp_path / "downloads")
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(files["labels"])),
        *("--heldout", str(files["heldout"]), "--normaliser", str(files["normaliser"])),
    )
    assert completed.returncode == 0, completed.stderr
    assert "git add model.dvc .gitignore params.yaml" in completed.stdout
    copied = sorted(path.name for path in (repo / "model").iterdir())
    assert copied == ["heldout.npz", "labels.json", "model.h5", "normaliser.pkl"]
    text = (repo / "params.yaml").read_text()
    inputs = yaml.safe_load(text)["inputs"]
    assert inputs["folder"] == "model" and inputs["model"] == "model/model.h5"
    assert inputs["labels"] == "model/labels.json" and inputs["custom_objects"] == "none"
    # Only the inputs section changed: other sections and their comments are as they were.
    original = (REPO_ROOT / "params.yaml").read_text()
    assert text.split("\ndemo_model:")[1] == original.split("\ndemo_model:")[1]
    assert (repo / "model.dvc").is_file()
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    assert "model.dvc" in staged and "model/model.h5" not in staged
    assert untracked_inputs(Workspace(repo)) == []


def test_init_again_replaces_the_folder_and_keeps_no_stale_file(repo, tmp_path):
    files = user_files(tmp_path / "downloads")
    args = ["--model", str(files["model"]), "--labels", str(files["labels"])]
    assert run_init(repo, *args, "--heldout", str(files["heldout"])).returncode == 0
    second = run_init(repo, *args, "--heldout", str(files["heldout"]), "--normaliser", "none")
    assert second.returncode == 0, second.stderr
    assert not (repo / "model" / "normaliser.pkl").exists()
    assert yaml.safe_load((repo / "params.yaml").read_text())["inputs"]["normaliser"] == "none"


def test_a_missing_file_is_named_and_nothing_changes(repo, tmp_path):
    files = user_files(tmp_path / "downloads")
    before = (repo / "params.yaml").read_text()
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(tmp_path / "nope.txt")),
        *("--heldout", str(files["heldout"])),
    )
    assert completed.returncode == 2
    assert "nope.txt does not exist" in completed.stderr
    assert (repo / "params.yaml").read_text() == before
    assert not (repo / "model").exists()


def test_inputs_tracked_by_neither_git_nor_dvc_are_named(repo):
    # params.yaml edited by hand to name files that sit in the tree but were never added.
    files = user_files(repo / "mine")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["inputs"].update(
        folder="mine",
        **{key: str(path.relative_to(repo)) for key, path in files.items()},
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    problems = untracked_inputs(Workspace(repo))
    assert len(problems) == 4
    assert all("tracked by neither git nor DVC" in line for line in problems)
    assert "python -m pipeline.init" in problems[0]
    # Tracked by git is enough too: CI would have it.
    subprocess.run(["git", "add", "mine"], cwd=repo, check=True)
    assert untracked_inputs(Workspace(repo)) == []
