"""A rollback puts back the model's inputs with the release: two user models brought with
`pipeline.init`, each converted and checked by the real stages and promoted through real
git-lfs to a bare remote; rolling back to the first restores model.dvc and its data (from the
local DVC cache, else the DVC remote), so `dvc repro` rebuilds the first model."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import release_history as history
import yaml
from clones import clone_of, dvc, git
from release_repos import write_gate_verdict
from user_files import write_user_files

from pipeline.paths import REPO_ROOT, Workspace
from pipeline.release.git_repo import GitRepo
from pipeline.release.recovery import recover
from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def python(clone: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m <module>` in the clone, on the clone's own pipeline code."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("PIPELINE_WORKSPACE", None)
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=600)


def tiny_model(seed: int, features: int, classes: int):
    """A one-layer softmax classifier with seeded random weights: converts in a second."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes, "softmax")])


def bring_and_release(work: Path, files: dict[str, str], tag: str) -> str:
    """`pipeline.init` with the user's files, convert and parity for real, the gate's verdict
    written as test_promote writes it, commit, promote; the candidate's sha256."""
    flags = [f"--{key}={files[key]}" for key in ("model", "labels", "heldout")]
    if files["normaliser"] != "none":
        flags.append(f"--normaliser={files['normaliser']}")
    init = python(work, "pipeline.init", *flags)
    assert init.returncode == 0, init.stderr
    repro = dvc(work, "repro", "parity")
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    write_gate_verdict(Workspace(work))
    assert dvc(work, "commit", "--force", "gate").returncode == 0
    git(work, "add", "model.dvc", ".gitignore", "params.yaml", "dvc.lock", "reports")
    git(work, "commit", "-qm", f"Bring the model of {tag}")
    promoted = python(work, "pipeline.promote")
    assert f"promoted {tag}" in promoted.stdout, promoted.stdout + promoted.stderr
    return sha256_of(work / "build" / "candidate" / "model.tflite")


folder_digest = history.folder_digest


def a_state(work: Path, bare: Path) -> dict:
    """What a refused or undone rollback must leave as it was."""
    return {
        "head": git(work, "rev-parse", "HEAD"),
        "status": git(work, "status", "--porcelain"),
        "tracked": git(work, "ls-files", "-s"),
        "params": (work / "params.yaml").read_text(),
        "model/": folder_digest(work / "model") if (work / "model").exists() else None,
        "remote": git(bare, "show-ref"),
    }


def documented_dry_run() -> str:
    """The dry run docs/releasing.md shows for a rollback from a pipeline.init model."""
    page = (REPO_ROOT / "docs" / "releasing.md").read_text()
    return re.search(r"```text\n(dry run, nothing changed; would restore .*?)```", page, re.S)[1]


def test_rollback_restores_model_dvc_and_its_data_and_repro_rebuilds_that_model(
    tmp_path_factory,
):
    base = tmp_path_factory.mktemp("rollback-inputs")
    work, bare = base / "work", base / "origin.git"
    clone_of(REPO_ROOT, work)
    git(work, "checkout", "-q", "-B", "main")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["parity"]["min_accuracy"] = None  # random weights: no accuracy to speak of
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(work, "commit", "-qam", "no accuracy floor")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(work, "remote", "set-url", "origin", str(bare))
    git(work, "push", "-q", "--no-verify", "origin", "main")  # the project's docs stay pointers

    # Model A: labels as text, no normaliser. Model B: another shape, labels as JSON and a
    # normaliser, so each of params.yaml's `inputs`, model.dvc and model/ differs.
    files_a = write_user_files(
        base / "a", tiny_model(1, 6, 3), normaliser=None, labels_as="txt", integer_y=True
    )
    files_b = write_user_files(base / "b", tiny_model(2, 8, 4), labels_as="json", integer_y=True)
    sha_a = bring_and_release(work, files_a, "model-v1")
    model_a = folder_digest(work / "model")
    sha_b = bring_and_release(work, files_b, "model-v2")
    assert sha_b != sha_a and "normaliser.joblib" in folder_digest(work / "model")

    # The dry run names every file it would restore and changes nothing.
    before = a_state(work, bare)
    dry = python(work, "pipeline.rollback", "model-v1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "params.yaml (the sections that built model-v1)" in dry.stdout
    assert "model.dvc and the data it tracks, model/ (from the local DVC cache)" in dry.stdout
    assert dry.stdout == documented_dry_run()
    assert a_state(work, bare) == before

    rolled = python(work, "pipeline.rollback", "model-v1")
    assert rolled.returncode == 0, rolled.stderr
    assert "params.yaml's sections that built model-v1 are restored" in rolled.stdout
    assert (
        "restored model-v1's input: model.dvc and the data it tracks, model/ "
        "(from the local DVC cache)" in rolled.stdout
    )
    assert "next: `dvc repro` rebuilds model-v1's model" in rolled.stdout
    assert (work / "model.dvc").read_text() == git(work, "show", "model-v1:model.dvc")
    assert folder_digest(work / "model") == model_a  # B's normaliser is gone too
    inputs = yaml.safe_load((work / "params.yaml").read_text())["inputs"]
    assert inputs["labels"] == "model/labels.txt" and inputs["normaliser"] == "none"
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "rev-parse", "HEAD") == git(bare, "rev-parse", "main")

    # What the rollback says to run next: `dvc repro` gives back A's candidate, every verdict
    # passes for it, and promote finds it released already instead of cutting model-v3.
    repro = dvc(work, "repro")
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert "Running stage 'convert'" in repro.stdout  # converted again, for real
    assert sha256_of(work / "build" / "candidate" / "model.tflite") == sha_a
    summary = python(work, "pipeline.summary")
    assert summary.returncode == 0, summary.stdout + summary.stderr
    again = python(work, "pipeline.promote")
    assert "already promoted: model-v1" in again.stdout, again.stdout + again.stderr
    assert git(bare, "tag", "--list") == "model-v1\nmodel-v2\n"


def test_data_neither_cached_nor_on_the_remote_is_refused_a_kill_undone_then_pulled(tmp_path):
    root, bare, storage = history.new_project(tmp_path)
    names = history.write_inputs(root / "model", "A")
    history.release(root, "model-v1", "model", names)
    model_a = folder_digest(root / "model")
    names = history.write_inputs(root / "model", "B", normaliser=True)
    history.release(root, "model-v2", "model", names)
    a_only = history.dvc_objects(root, "model-v1") - history.dvc_objects(root, "model-v2")
    for md5 in a_only:
        history.cache_path(root, md5).unlink()
    before = a_state(root, bare)

    dry = history.rollback(root, "model-v1", "--dry-run")
    assert "model.dvc and the data it tracks, model/ (from DVC remote 'storage')" in dry.stdout
    # A remote DVC cannot read (its storage plugin is not installed) is named with DVC's words
    # and the fix, by the dry run too, not blamed for lacking the data.
    history.dvc(root, "remote", "modify", "--local", "storage", "url", "s3://releases/dvc")
    for args in (["--dry-run"], []):
        unreadable = history.rollback(root, "model-v1", *args)
        assert unreadable.returncode == 1
        assert (
            "`dvc fetch` from DVC remote 'storage' cannot run: s3 is supported, but requires"
        ) in unreadable.stderr
        assert "`python -m pipeline.inputs.pull` does both" in unreadable.stderr
    assert a_state(root, bare) == before
    (root / ".dvc" / "config.local").unlink()
    storage.rename(tmp_path / "storage-away")
    refused = history.rollback(root, "model-v1")
    assert refused.returncode == 1
    assert "neither the local DVC cache nor DVC remote 'storage' holds model-v1's model" in (
        refused.stderr
    )
    assert "`dvc push model.dvc` from a checkout of model-v1" in refused.stderr
    assert a_state(root, bare) == before

    # Killed once the write step is done: A's data is in model/, the next run puts B's back.
    (tmp_path / "storage-away").rename(storage)
    journal = root / "build" / "promote" / "journal.json"
    process = history.rollback(root, "model-v1", wait=False)
    deadline = time.monotonic() + 300
    while '"step": "write"' not in (journal.read_text() if journal.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert folder_digest(root / "model") == model_a
    # The dry run plans what the real run does: the undo first, then the rollback.
    killed = a_state(root, bare)
    dry = history.rollback(root, "model-v1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(
        "dry run, nothing changed; would first undo the interrupted rollback (main, step "
        "'write'), which stopped before its push"
    ), dry.stdout
    assert "HEAD, the index and release/ as they were\nrestore from model-v1:\n" in dry.stdout
    assert "model.dvc and the data it tracks, model/" in dry.stdout
    assert a_state(root, bare) == killed
    recover(GitRepo(root), Workspace(root), orphan_wait_seconds=5)
    assert a_state(root, bare) == before
    assert history.dvc(root, "status", "model.dvc").startswith("Data and pipelines are up to date")

    for md5 in a_only:
        history.cache_path(root, md5).unlink(missing_ok=True)
    rolled = history.rollback(root, "model-v1")
    assert rolled.returncode == 0, rolled.stderr
    assert (
        "restored model-v1's input: model.dvc and the data it tracks, model/ "
        "(from DVC remote 'storage')" in rolled.stdout
    )
    assert folder_digest(root / "model") == model_a
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "rev-parse", "HEAD") == git(bare, "rev-parse", "main")


def test_inputs_in_git_and_a_dvc_file_head_no_longer_has_come_back(tmp_path):
    root, bare, _ = history.new_project(tmp_path)
    history.release(root, "model-v1", "model", history.write_inputs(root / "model", "A"))
    model_a = folder_digest(root / "model")
    history.dvc(root, "remove", "model.dvc")  # the inputs move into git, model/ goes
    shutil.rmtree(root / "model")
    names = history.write_inputs(root / "inputs", "B")
    history.release(root, "model-v2", "inputs", names, tracked_by="git")
    (root / "inputs" / "labels.txt").write_text("relabelled\n")
    history.release(root, "model-v3", "inputs", names, tracked_by="git")

    to_v2 = history.rollback(root, "model-v2")
    assert to_v2.returncode == 0, to_v2.stderr
    assert "warning: model-v2's manifest does not record the plan its gate passed" in to_v2.stderr
    assert "restored model-v2's input: inputs/labels.txt (a file in git)" in to_v2.stdout
    assert (root / "inputs" / "labels.txt").read_text() == "B labels.txt\n"

    # A refused push undoes it all: model.dvc, model/ and the .gitignore entry go again.
    before = a_state(root, bare)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    refused = history.rollback(root, "model-v1")
    assert refused.returncode == 1 and "protected branch" in refused.stderr
    assert a_state(root, bare) == before and not (root / "model.dvc").exists()

    hook.unlink()
    dry = history.rollback(root, "model-v1", "--dry-run")
    assert "model.dvc and the data it tracks, model/ (from the local DVC cache)" in dry.stdout
    to_v1 = history.rollback(root, "model-v1")
    assert to_v1.returncode == 0, to_v1.stderr
    assert folder_digest(root / "model") == model_a
    assert "/model" in (root / ".gitignore").read_text().splitlines()
    assert git(root, "status", "--porcelain") == ""  # model/ is DVC's, ignored by git
    assert git(root, "show", "HEAD:model.dvc") == git(root, "show", "model-v1:model.dvc")
