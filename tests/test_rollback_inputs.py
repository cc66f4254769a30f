"""A rollback puts back the model's inputs with the release: two user models brought with
`pipeline.init`, each converted and checked by the real stages and promoted through real
git-lfs to a bare remote; rolling back to the first restores model.dvc and its data (from the
local DVC cache, else the DVC remote), so `dvc repro` rebuilds the first model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_dvc_pipeline import clone_of, dvc, git
from test_promote import write_gate_verdict
from user_files import write_user_files

from pipeline.paths import REPO_ROOT, Workspace
from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def python(clone: Path, module: str, *args: str, wait: bool = True):
    """`python -m <module>` in the clone, on the clone's own pipeline code."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("PIPELINE_WORKSPACE", None)
    command = [sys.executable, "-m", module, *args]
    if not wait:
        return subprocess.Popen(command, cwd=clone, env=env, text=True, stdout=subprocess.PIPE)
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=600)


def tiny_model(seed: int, features: int, classes: int):
    """A one-layer softmax classifier with seeded random weights: converts in a second."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes, "softmax")])


def bring_and_release(work: Path, files: dict[str, str], tag: str) -> str:
    """`pipeline.init` with the user's files, convert and parity for real, the gate's verdict
    written as test_promote writes it, commit, `dvc push`, promote; the candidate's sha256."""
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
    pushed = dvc(work, "push")
    assert pushed.returncode == 0, pushed.stderr
    promoted = python(work, "pipeline.promote")
    assert f"promoted {tag}" in promoted.stdout, promoted.stdout + promoted.stderr
    return sha256_of(work / "build" / "candidate" / "model.tflite")


def folder_digest(folder: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in sorted(folder.iterdir())}


def a_state(work: Path, bare: Path) -> dict:
    """What a refused or undone rollback must leave as it was."""
    return {
        "head": git(work, "rev-parse", "HEAD"),
        "status": git(work, "status", "--porcelain"),
        "model.dvc": (work / "model.dvc").read_text(),
        "params": (work / "params.yaml").read_text(),
        "model/": folder_digest(work / "model"),
        "remote": git(bare, "show-ref"),
    }


def test_rollback_restores_model_dvc_and_its_data_and_repro_rebuilds_that_model(
    tmp_path_factory,
):
    base = tmp_path_factory.mktemp("rollback-inputs")
    work, bare, storage = base / "work", base / "origin.git", base / "dvc-storage"
    clone_of(REPO_ROOT, work)
    git(work, "checkout", "-q", "-B", "main")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["parity"]["min_accuracy"] = None  # random weights: no accuracy to speak of
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc(work, "remote", "add", "-d", "storage", str(storage)).returncode == 0
    git(work, "commit", "-qam", "no accuracy floor; a DVC remote")
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
    assert a_state(work, bare) == before

    # A's data neither in the local cache nor on the DVC remote: refused, nothing changed.
    a_objects = a_only_objects(work)
    cache = work / ".dvc" / "cache" / "files" / "md5"
    for oid in a_objects:
        (cache / oid[:2] / oid[2:]).unlink()
    storage.rename(base / "storage-away")
    refused = python(work, "pipeline.rollback", "model-v1")
    assert refused.returncode == 1
    assert "neither the local DVC cache nor DVC remote 'storage' holds model-v1's model" in (
        refused.stderr
    )
    assert "`dvc push model.dvc` from a checkout of model-v1" in refused.stderr
    assert a_state(work, bare) == before

    # Killed once A's files are written: the next run puts B's back before it goes on.
    (base / "storage-away").rename(storage)
    rollback = python(work, "pipeline.rollback", "model-v1", wait=False)
    journal = work / "build" / "promote" / "journal.json"
    deadline = time.monotonic() + 300
    while '"step": "write"' not in (journal.read_text() if journal.exists() else ""):
        assert rollback.poll() is None and time.monotonic() < deadline, rollback.stdout
        time.sleep(0.01)
    rollback.send_signal(signal.SIGKILL)
    rollback.communicate(timeout=60)
    again = python(work, "pipeline.promote")
    assert "an interrupted rollback" in again.stdout and "undid its local steps" in again.stdout
    assert "already promoted: model-v2" in again.stdout, again.stdout + again.stderr
    assert a_state(work, bare) == before

    # The rollback pulls A's data back from the DVC remote and says what it restored.
    for oid in a_objects:
        (cache / oid[:2] / oid[2:]).unlink(missing_ok=True)
    rolled = python(work, "pipeline.rollback", "model-v1")
    assert rolled.returncode == 0, rolled.stderr
    assert (
        "restored model-v1's input: model.dvc and the data it tracks, model/ "
        "(from DVC remote 'storage')" in rolled.stdout
    )
    assert "next: `dvc repro` rebuilds model-v1's model" in rolled.stdout
    assert (work / "model.dvc").read_text() == git(work, "show", "model-v1:model.dvc")
    assert folder_digest(work / "model") == model_a  # B's normaliser is gone too
    inputs = yaml.safe_load((work / "params.yaml").read_text())["inputs"]
    assert inputs["labels"] == "model/labels.txt" and inputs["normaliser"] == "none"
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "rev-parse", "HEAD") == git(bare, "rev-parse", "main")

    # The next `dvc repro` converts A again (not from DVC's run cache): A's candidate.
    repro = dvc(work, "repro", "--no-run-cache", "parity")
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert sha256_of(work / "build" / "candidate" / "model.tflite") == sha_a
    manifest = json.loads(git(work, "show", "main:release/manifest.json"))
    assert manifest["sha256"] == sha_a and manifest["tag"] == "model-v1"


def a_only_objects(work: Path) -> list[str]:
    """The DVC cache objects of model-v1's model/ that model-v2's does not share."""

    def objects(tag: str) -> set[str]:
        text = git(work, "show", f"{tag}:model.dvc")
        dir_md5 = yaml.safe_load(text)["outs"][0]["md5"]
        listing_path = work / ".dvc" / "cache" / "files" / "md5" / dir_md5[:2] / dir_md5[2:]
        return {dir_md5, *(entry["md5"] for entry in json.loads(listing_path.read_text()))}

    return sorted(objects("model-v1") - objects("model-v2"))
