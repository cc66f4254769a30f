"""pipeline.init and input_tracking: a user's files copied into one folder that DVC tracks,
params.yaml pointed at them (comments kept), and inputs that CI could not get named."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from user_files import write_user_files

from pipeline.init import main as init_main
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


@pytest.fixture(scope="module")
def small_model():
    """A tiny real Keras model (input (5,), three softmax outputs): init loads what it copies."""
    import keras

    keras.utils.set_random_seed(9)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])


def user_files(folder: Path, model) -> dict[str, Path]:
    """A user's real files under their own names: a legacy .h5 model, a JSON label list, a
    held-out .npz and a fitted scaler."""
    written = write_user_files(
        folder, model, model_name="my_model.h5", labels=["cat", "dog", "bird"], labels_as="json"
    )
    files = {
        "model": folder / "my_model.h5",
        "labels": folder / "classes.json",
        "heldout": folder / "test_set.npz",
        "normaliser": folder / "scaler.pkl",
    }
    for key, source in (("labels", "labels"), ("heldout", "heldout"), ("normaliser", "normaliser")):
        Path(written[source]).rename(files[key])
    return files


def run_init(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.init ARGS` in `root`: its exit status and what it printed. Run in
    this process, whose TensorFlow is already loaded, so each call skips a cold import."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, {WORKSPACE_ENV: str(root)}),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        returncode = init_main(list(args))
    return subprocess.CompletedProcess(args, returncode, stdout.getvalue(), stderr.getvalue())


def test_init_copies_tracks_and_points_params_at_the_files(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(files["labels"])),
        *("--heldout", str(files["heldout"]), "--normaliser", str(files["normaliser"])),
    )
    assert completed.returncode == 0, completed.stderr
    assert "git add model.dvc .gitignore params.yaml" in completed.stdout
    # What it left in params.yaml that judges the model, said rather than found later.
    assert "parity.min_accuracy: null: no floor on accuracy" in completed.stdout
    assert "convert.quantization: none" in completed.stdout
    copied = sorted(path.name for path in (repo / "model").iterdir())
    assert copied == ["heldout.npz", "labels.json", "model.h5", "normaliser.pkl", "sources.json"]
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


def test_init_again_replaces_the_folder_and_keeps_no_stale_file(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    args = ["--model", str(files["model"]), "--labels", str(files["labels"])]
    assert run_init(repo, *args, "--heldout", str(files["heldout"])).returncode == 0
    second = run_init(repo, *args, "--heldout", str(files["heldout"]), "--normaliser", "none")
    assert second.returncode == 0, second.stderr
    assert not (repo / "model" / "normaliser.pkl").exists()
    assert yaml.safe_load((repo / "params.yaml").read_text())["inputs"]["normaliser"] == "none"


def test_a_missing_file_is_named_and_nothing_changes(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    before = (repo / "params.yaml").read_text()
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(tmp_path / "nope.txt")),
        *("--heldout", str(files["heldout"])),
    )
    assert completed.returncode == 2
    assert f"--labels {tmp_path / 'nope.txt'} does not exist" in completed.stderr
    assert (repo / "params.yaml").read_text() == before
    assert not (repo / "model").exists()


def test_inputs_tracked_by_neither_git_nor_dvc_are_named(repo, small_model):
    # params.yaml edited by hand to name files that sit in the tree but were never added.
    files = user_files(repo / "mine", small_model)
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


def refused_before_anything_changed(repo: Path, files: dict[str, Path]) -> str:
    """Run init on `files`; assert it refused and left params.yaml and model/ alone; stderr."""
    before = (repo / "params.yaml").read_text()
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(files["labels"])),
        *("--heldout", str(files["heldout"]), "--normaliser", str(files["normaliser"])),
    )
    assert completed.returncode == 2, completed.stdout
    assert (repo / "params.yaml").read_text() == before
    assert not (repo / "model").exists() and not (repo / "model.dvc").exists()
    return completed.stderr


def test_a_weights_only_h5_is_refused_naming_the_users_file(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    weights = tmp_path / "downloads" / "my_weights.weights.h5"
    small_model.save_weights(weights)
    files["model"] = weights.rename(tmp_path / "downloads" / "my_weights.h5")
    reason = refused_before_anything_changed(repo, files)
    assert f"model {files['model']} holds only weights, no architecture" in reason
    assert "pass that file as --model" in reason


def test_held_out_labels_the_list_does_not_know_are_refused(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    with np.load(files["heldout"]) as heldout:
        np.savez(files["heldout"], X=heldout["X"], y=np.array(["cat", "horse"] * 12))
    reason = refused_before_anything_changed(repo, files)
    assert f"held-out set {files['heldout']} has labels the label list does not know" in reason
    assert "['horse']" in reason


def test_held_out_samples_of_another_shape_are_refused(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    with np.load(files["heldout"]) as heldout:
        np.savez(files["heldout"], X=np.zeros((24, 7), np.float32), y=heldout["y"])
    reason = refused_before_anything_changed(repo, files)
    assert f"held-out set {files['heldout']} has X of shape (24, 7)" in reason
    assert "the model needs (n, 5)" in reason


def test_a_label_list_of_another_length_is_refused(repo, tmp_path, small_model):
    files = user_files(tmp_path / "downloads", small_model)
    files["labels"].write_text('["cat", "dog"]')
    reason = refused_before_anything_changed(repo, files)
    assert f"labels {files['labels']} lists 2 labels but the model outputs 3 classes" in reason


def test_one_sigmoid_output_takes_one_label_the_positive_class(repo, tmp_path):
    import keras

    one_sigmoid = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    files = user_files(tmp_path / "downloads", one_sigmoid)
    with np.load(files["heldout"]) as heldout:  # a binary classifier's y: 1 dog, 0 not
        np.savez(files["heldout"], X=heldout["X"], y=np.arange(24) % 2)
    files["labels"].write_text('["cat", "dog"]')
    reason = refused_before_anything_changed(repo, files)
    said = f"labels {files['labels']} lists 2 labels ('cat', 'dog') but the model has one output"
    assert said in reason
    assert "one output takes one label: the positive class, whose score it answers" in reason
    # Done as it says, the same files come in.
    files["labels"].write_text('["dog"]')
    completed = run_init(
        repo,
        *("--model", str(files["model"]), "--labels", str(files["labels"])),
        *("--heldout", str(files["heldout"]), "--normaliser", str(files["normaliser"])),
    )
    assert completed.returncode == 0, completed.stderr
