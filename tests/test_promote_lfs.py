"""The remote can serve what it holds: a corrupt or missing LFS object on a real bare remote is
named by the service and the smoke check, and promote repairs it (or refuses naming it where
it cannot write to the remote's storage). Render's build is run as render.yaml writes it, in a
clone made without Git LFS, and the service is the real gunicorn render.yaml starts."""

import os
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from clones import git
from release_repos import promote, refuse, snapshot
from smoke_runner import smoke

from service.bundle import sha256_of

pytestmark = pytest.mark.slow


@pytest.fixture
def released(release_repo):
    """A repository whose candidate is promoted as model-v1 to a real bare remote."""
    workspace, remote = release_repo
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    return workspace, remote


def stored_object(remote: Path, oid: str) -> Path:
    return remote / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def render_build(remote: Path, destination: Path) -> Path:
    """A clone as Render makes it (no Git LFS), then render.yaml's buildCommand after its pip
    install (the service's pins are this environment's already); the clone."""
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(remote), str(destination)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    blueprint = yaml.safe_load((destination / "render.yaml").read_text())
    pip, fetch = blueprint["services"][0]["buildCommand"].split(" && ", 1)
    assert pip == "pip install --no-cache-dir -r service/requirements.txt"
    subprocess.run(["bash", "-c", fetch], cwd=destination, capture_output=True, check=True)
    return destination


def test_a_corrupt_remote_object_is_named_by_the_service_and_smoke_and_promote_repairs_it(
    released, start_service, tmp_path
):
    workspace, remote = released
    oid = sha256_of(workspace.release_dir / "model.tflite")
    stored = stored_object(remote, oid)
    # Overwritten in place: git-lfs hard-links a local remote's objects to the pushing
    # repository's own, so that copy is corrupt too.
    stored.write_bytes(b"\0" * stored.stat().st_size)
    clone = render_build(remote, tmp_path / "render")
    record = clone / "build" / "lfs-pull.log"
    assert "invalid hash" in record.read_text() and "git lfs pull: ok" not in record.read_text()
    service = start_service(clone / "release", env={"LFS_PULL_LOG": str(record)})
    health = requests.get(f"{service.url}/api/health/", timeout=10)
    body = health.json()
    assert health.status_code == 503 and body["fault"] == "lfs_object_corrupt", body
    assert "the LFS object is corrupt" in body["reason"] and oid[:12] in body["reason"]
    assert "python -m pipeline.promote" in body["reason"]
    checked = smoke(service.url, workspace.release_dir / "manifest.json", deadline=3)
    assert checked.returncode == 1
    assert "HTTP 503 (lfs_object_corrupt): model.tflite is a Git LFS pointer: the LFS object " in (
        checked.stdout
    )
    assert "the build did not pull" not in checked.stdout
    # The dry run says the repair and changes nothing.
    before = snapshot(workspace, remote)
    dry = promote(workspace, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "model-v1 is promoted, but origin does not serve its LFS objects; would:" in dry.stdout
    assert (
        f"remove the corrupt copy of release/model.tflite's LFS object {oid[:12]} from origin "
        f"({stored}: its bytes do not hash to its name) and upload it again" in dry.stdout
    )
    assert snapshot(workspace, remote) == before and sha256_of(stored) != oid
    # "Already promoted" asks the remote first, and repairs it.
    repaired = promote(workspace)
    assert repaired.returncode == 0, repaired.stderr
    assert f"removed the corrupt copy of release/model.tflite's LFS object {oid[:12]}" in (
        repaired.stdout
    )
    assert "already promoted: model-v1 holds" in repaired.stdout
    assert sha256_of(stored) == oid
    assert git(remote, "tag", "--list") == "model-v1\n"
    # The next build pulls the model, and the live service is the promoted one.
    clone = render_build(remote, tmp_path / "render-again")
    assert "git lfs pull: ok" in (clone / "build" / "lfs-pull.log").read_text()
    service = start_service(clone / "release")
    checked = smoke(service.url, workspace.release_dir / "manifest.json", deadline=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_object_removed_from_the_remote_is_uploaded_again_by_the_next_promote(
    released, tmp_path
):
    workspace, remote = released
    oid = sha256_of(workspace.release_dir / "model.tflite")
    stored_object(remote, oid).unlink()
    dry = promote(workspace, "--dry-run")
    assert (
        f"would:\n  upload release/model.tflite's LFS object {oid[:12]}, which origin does not "
        "hold" in dry.stdout
    )
    assert not stored_object(remote, oid).exists()
    again = promote(workspace)
    assert again.returncode == 0, again.stderr
    assert f"uploaded release/model.tflite's LFS object {oid[:12]} to origin" in again.stdout
    clone = render_build(remote, tmp_path / "render")
    assert sha256_of(clone / "release" / "model.tflite") == oid


def test_a_corrupt_object_on_storage_promote_does_not_write_to_is_refused_naming_it(
    released, tmp_path
):
    # An LFS URL of its own (as a server has) is storage promote never deletes from.
    workspace, remote = released
    git(workspace.root, "config", "remote.origin.lfsurl", remote.as_uri())
    oid = sha256_of(workspace.release_dir / "model.tflite")
    stored = stored_object(remote, oid)
    stored.unlink()  # a copy of its own, so this repository's copy stays good
    stored.write_bytes(b"\0" * (workspace.release_dir / "model.tflite").stat().st_size)
    for args in (("--dry-run",), ()):
        reason = refuse(workspace, remote, *args)
        assert f"holds a corrupt copy of release/model.tflite's LFS object {oid[:12]}" in reason
        assert f"repair: delete LFS object {oid} on the server of {remote}" in reason
    assert sha256_of(stored) != oid


def test_the_lfs_store_a_committed_lfsconfig_names_is_where_promote_uploads_and_checks(
    release_repo, tmp_path
):
    workspace, remote = release_repo
    store = tmp_path / "lfs-store.git"
    git(tmp_path, "init", "-q", "--bare", str(store))
    git(workspace.root, "config", "--file", ".lfsconfig", "lfs.url", f"file://{store}")
    git(workspace.root, "add", ".lfsconfig")
    git(workspace.root, "commit", "-qm", "LFS objects live in their own store")
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "promoted model-v1" in completed.stdout
    sha256 = sha256_of(workspace.release_dir / "model.tflite")
    assert sha256_of(stored_object(store, sha256)) == sha256
    assert not stored_object(remote, sha256).exists()
