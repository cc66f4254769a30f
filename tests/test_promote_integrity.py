"""Release integrity: verdicts that no longer speak for the inputs, a fresh machine, objects of
other files: each ends in a complete release or a refusal after which both repositories' refs
are exactly as before (rollback twice: test_release_faults.py)."""

import json
import os
import subprocess

import pytest
import yaml
from clones import git
from release_repos import promote, refs, refuse

from pipeline.params import load_params
from pipeline.release.bundle import blessed_verdicts, write_release
from pipeline.release.errors import PromotionRefused
from service.bundle import MANIFEST_NAME, MODEL_NAME, sha256_of

pytestmark = pytest.mark.slow


def test_a_params_change_since_the_gate_ran_is_refused(release_repo):
    workspace, remote = release_repo
    params = yaml.safe_load(workspace.params_path.read_text())
    params["gate"]["plans"]["free"]["max_peak_memory_mb"] = 100
    workspace.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(workspace.root, "commit", "-qam", "tighten the gate")
    reason = refuse(workspace, remote)
    assert (
        "gate: params.yaml gate.plans.free.max_peak_memory_mb changed since the gate ran; "
        "run dvc repro" in reason
    )


def test_a_render_yaml_change_since_the_gate_ran_is_refused(release_repo):
    workspace, remote = release_repo
    with open(workspace.render_yaml_path, "a") as render_yaml:
        render_yaml.write("# another start command would be judged anew\n")
    git(workspace.root, "commit", "-qam", "edit render.yaml")
    assert "gate: render.yaml changed since the gate ran; run dvc repro" in refuse(
        workspace, remote
    )


def test_a_verdict_without_a_fingerprint_is_refused(release_repo):
    workspace, remote = release_repo
    report = json.loads(workspace.report_path("parity").read_text())
    del report["inputs_fingerprint"]
    workspace.report_path("parity").write_text(json.dumps(report))
    assert "parity: the verdict records no inputs fingerprint" in refuse(workspace, remote)


@pytest.mark.parametrize("given", [(), ("COMMITTER",)], ids=["none", "committer only"])
def test_a_missing_git_identity_is_refused_before_anything_changes(
    release_repo, tmp_path, monkeypatch, given
):
    workspace, remote = release_repo
    git(workspace.root, "config", "--unset", "user.name")
    git(workspace.root, "config", "--unset", "user.email")
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a fresh machine: no global config
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # Nor an identity given through the environment, or only the committer's (as a CI job may
    # set): `git commit` needs an author too.
    for variable in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{variable}_NAME", raising=False)
        monkeypatch.delenv(f"GIT_{variable}_EMAIL", raising=False)
    for variable in given:
        monkeypatch.setenv(f"GIT_{variable}_NAME", "Release Bot")
        monkeypatch.setenv(f"GIT_{variable}_EMAIL", "bot@example.com")
    reason = refuse(workspace, remote)
    assert (
        "git has no author identity to sign the release commit (`git var GIT_AUTHOR_IDENT`: "
        in (reason)
    )
    assert "Please tell me who you are" in reason and "git config user.email" in reason
    assert not (workspace.build_dir / "promote" / "journal.json").exists()


def test_an_lfs_object_of_another_file_missing_from_the_remote_does_not_block(
    release_repo, tmp_path
):
    # As with docs/benchmark.png once: committed through LFS, its object never pushed.
    workspace, remote = release_repo
    root = workspace.root
    git(root, "lfs", "install", "--local")
    (root / ".gitattributes").write_text("*.png filter=lfs diff=lfs merge=lfs -text\n")
    (root / "picture.png").write_bytes(os.urandom(2048))
    git(root, "add", ".gitattributes", "picture.png")
    git(root, "commit", "-qm", "a picture whose LFS object is on no remote")
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert refs(remote) == refs(root)
    # A user's clone gets the release's objects; the picture's object is really missing.
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "model-v1", str(remote), str(clone)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    git(clone, "lfs", "install", "--local")
    git(clone, "lfs", "pull", "--include", "release/")
    model = clone / "release" / "model.tflite"
    assert sha256_of(model) == sha256_of(workspace.candidate_dir / "model.tflite")
    assert git(clone, "lfs", "pull", "--include", "picture.png", check=False) == ""


def test_a_failed_upload_leaves_the_remote_refs_and_the_index_untouched(release_repo):
    workspace, remote = release_repo
    git(workspace.root, "add", "reports")  # staged by the engineer: must stay staged
    (remote / "lfs").mkdir(exist_ok=True)
    (remote / "lfs" / "objects").write_text("not a folder: the upload fails")
    reason = refuse(workspace, remote)
    assert "step 'upload' failed" in reason
    assert "the remote's branches and tags are as they were" in reason
    assert not list((workspace.build_dir / "promote").glob("*"))


def test_promoting_the_released_candidate_again_is_a_no_op(release_repo):
    workspace, remote = release_repo
    assert promote(workspace).returncode == 0
    before = refs(remote)
    again = promote(workspace)
    assert again.returncode == 0, again.stderr
    assert "already promoted: model-v1 holds" in again.stdout
    assert refs(remote) == before == refs(workspace.root)


def test_objects_uploaded_where_the_remote_does_not_serve_them_fail_verification(
    release_repo, tmp_path
):
    # lfs.pushurl sends uploads elsewhere: the push would succeed, users would get no model.
    workspace, remote = release_repo
    elsewhere = tmp_path / "elsewhere.git"
    git(tmp_path, "init", "-q", "--bare", str(elsewhere))
    git(workspace.root, "config", "lfs.pushurl", elsewhere.as_uri())
    # git-lfs's read of a file remote may create an empty lfs/objects folder there: no ref.
    reason = refuse(workspace, remote, unchanged=("head", "tags", "status", "remote_refs"))
    assert "step 'verify' failed" in reason
    assert "the remote's branches and tags are as they were" in reason
    assert not workspace.release_dir.exists()


def test_a_candidate_rebuilt_after_its_verdicts_were_checked_is_not_written(release_repo, tmp_path):
    workspace, _ = release_repo
    verdicts = blessed_verdicts(workspace)
    # A `dvc repro` beside promote writes another candidate, manifest and all.
    model = workspace.candidate_dir / MODEL_NAME
    model.write_bytes(model.read_bytes() + b"\0")
    manifest = json.loads((workspace.candidate_dir / MANIFEST_NAME).read_text())
    manifest["sha256"] = sha256_of(model)
    (workspace.candidate_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(PromotionRefused, match="changed after its verdicts were checked"):
        write_release(
            workspace,
            tmp_path / "bundle",
            1,
            "model-v1",
            "0" * 40,
            load_params(workspace),
            verdicts,
        )
