"""Why a model file is still an LFS pointer, from the record render.yaml's build writes: real
`git lfs pull` runs against a real bare remote with a small LFS file, each fault made for real."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.paths import REPO_ROOT
from service.bundle import LfsPointer, read_model_bytes, sha256_of
from service.lfs_pull import DEFAULT_RECORD, FAULTS, diagnosed, pointer_diagnosis

pytestmark = pytest.mark.slow  # git-lfs


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True)


@pytest.fixture
def lfs_remote(tmp_path) -> tuple[Path, str]:
    """A bare remote holding one small file through Git LFS; (remote, its object id)."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    git(work, "lfs", "install", "--local")
    (work / ".gitattributes").write_text("*.tflite filter=lfs diff=lfs merge=lfs -text\n")
    (work / "model.tflite").write_bytes(os.urandom(4096))
    git(work, "add", ".")
    git(work, "-c", "user.name=a", "-c", "user.email=a@example.com", "commit", "-qm", "model")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "origin", "main")
    return remote, sha256_of(work / "model.tflite")


def build(remote: Path, clone: Path) -> tuple[LfsPointer, str]:
    """render.yaml's fetch (its buildCommand after the pip install) in a clone made without
    LFS; the pointer the model file still is, and the build's record."""
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(remote), str(clone)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    command = yaml.safe_load((REPO_ROOT / "render.yaml").read_text())["services"][0]
    fetch = command["buildCommand"].split(" && ", 1)[1]
    subprocess.run(["bash", "-c", fetch], cwd=clone, capture_output=True, check=True)
    with pytest.raises(LfsPointer) as pointer:
        read_model_bytes(clone / "model.tflite", "0" * 64)
    return pointer.value, (clone / DEFAULT_RECORD).read_text()


def test_a_corrupt_object_on_the_remote_is_told_from_a_missing_one(lfs_remote, tmp_path):
    remote, oid = lfs_remote
    stored = remote / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    stored.unlink()
    stored.write_bytes(b"\0" * 4096)  # its size, other bytes
    fault, reason = pointer_diagnosis(*build(remote, tmp_path / "corrupt"))
    assert fault == "lfs_object_corrupt"
    assert f"the LFS object is corrupt: the build's `git lfs pull` refused object {oid[:12]}" in (
        reason
    )
    stored.unlink()
    fault, reason = pointer_diagnosis(*build(remote, tmp_path / "missing"))
    assert fault == "lfs_object_missing"
    assert f"the git remote does not hold its LFS object {oid[:12]}" in reason


def test_a_pull_that_could_not_reach_the_remote_is_a_failed_pull(lfs_remote, tmp_path):
    remote, _ = lfs_remote
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(remote), str(clone)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    git(clone, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    fetch = yaml.safe_load((REPO_ROOT / "render.yaml").read_text())["services"][0]["buildCommand"]
    subprocess.run(["bash", "-c", fetch.split(" && ", 1)[1]], cwd=clone, check=True)
    with pytest.raises(LfsPointer) as pointer:
        read_model_bytes(clone / "model.tflite", "0" * 64)
    fault, reason = diagnosed(pointer.value, clone / DEFAULT_RECORD)
    assert fault == "lfs_pull_failed"
    assert "the build's `git lfs pull` failed" in reason and "gone.git" not in reason
    fault, reason = diagnosed(pointer.value, tmp_path / "no-such-record.log")
    assert fault == "lfs_not_pulled" and "did not pull Git LFS objects" in reason
    assert {"lfs_pull_failed", "lfs_not_pulled"} <= set(FAULTS)  # what /openapi.json lists


def test_an_object_an_lfs_server_sent_with_other_bytes_is_corrupt():
    # git-lfs's own words for an HTTP download whose bytes do not hash to the object's name
    # (its basic transfer adapter); no LFS server runs here to produce them.
    oid, other = "1" * 64, "2" * 64
    record = (
        f"Error downloading object: release/model.tflite ({oid[:7]}): Smudge error: Error "
        f"downloading release/model.tflite ({oid}): expected OID {oid}, got {other} after "
        "1030416 bytes written\nWARNING: git lfs pull failed; /api/health/ says why\n"
    )
    fault, reason = pointer_diagnosis(LfsPointer("model.tflite", oid), record)
    assert fault == "lfs_object_corrupt" and "the LFS object is corrupt" in reason
