"""Release faults a release engineer meets, each ending in a true message and a way out: two
runs at once, a kill while the push is still in flight, code that judges changing, a commit that
changes nothing served, rollback and rebuild, and a corrupt object on the remote."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from clones import git
from release_repos import (
    build_candidate,
    promote,
    refs,
    refuse,
    set_promote_param,
    slow_remote,
    start_promote,
    write_gate_verdict,
)
from workspaces import run_stage

from pipeline.paths import REPO_ROOT
from service.bundle import sha256_of

pytestmark = pytest.mark.slow
# Generous: the machine may be busy; the test never waits longer than the run takes.
START_DEADLINE_SECONDS = 300
# How long the slow remote holds a push: longer than a second promote takes to start, so it
# meets the first one still pushing.
HELD_PUSH_SECONDS = 12


def wait_for_push(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_promotes_at_once_one_completes_and_the_other_refuses(release_repo):
    workspace, remote = release_repo
    arrived = slow_remote(remote, seconds=HELD_PUSH_SECONDS)
    first = start_promote(workspace)
    wait_for_push(arrived, first)  # the first run is pushing
    second = promote(workspace)
    assert second.returncode == 1
    assert "another promote or rollback is running in this checkout (promote, pid" in (
        second.stderr
    )
    out, err = first.communicate(timeout=START_DEADLINE_SECONDS)
    assert first.returncode == 0, err
    assert "promoted model-v1" in out
    assert refs(remote) == refs(workspace.root)
    assert git(workspace.root, "tag", "--list") == "model-v1\n"


def test_a_kill_during_the_push_then_a_rerun_waits_for_it_and_finishes_it(release_repo):
    workspace, remote = release_repo
    arrived = slow_remote(remote, seconds=HELD_PUSH_SECONDS)
    killed = start_promote(workspace)
    wait_for_push(arrived, killed)
    killed.send_signal(signal.SIGKILL)  # promote alone: its git push lives on
    killed.communicate()
    rerun = promote(workspace)
    assert rerun.returncode == 0, rerun.stderr
    # The orphaned push landed while the rerun waited for it, and the message says so.
    assert "an interrupted promote (model-v1, step 'verify') had reached origin" in rerun.stdout
    assert "after waiting for the" in rerun.stdout
    assert refs(remote) == refs(workspace.root)
    assert git(workspace.root, "tag", "--list") == "model-v1\n"
    assert git(workspace.root, "log", "--format=%s").count("Promote model-v1") == 1
    assert git(workspace.root, "status", "--porcelain") == ""


def test_a_kill_during_the_push_then_a_rerun_ends_it_and_pushes_the_release_again(release_repo):
    workspace, remote = release_repo
    set_promote_param(workspace, "orphan_wait_seconds", 0)
    git(workspace.root, "push", "-q", "origin", "main")
    arrived = slow_remote(remote, seconds=120)
    killed = start_promote(workspace)
    wait_for_push(arrived, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    arrived.unlink()
    (remote / "hooks" / "pre-receive").write_text("#!/bin/sh\nexit 0\n")  # the rerun's push
    rerun = promote(workspace)
    assert rerun.returncode == 0, rerun.stderr
    assert "after ending the process(es) the killed run left" in rerun.stdout
    assert "is not on origin" in rerun.stdout and "no model-v1)" in rerun.stdout
    assert "the same release commit is pushed again" in rerun.stdout
    assert "pushed it to origin; it is complete" in rerun.stdout
    assert refs(remote) == refs(workspace.root)
    assert git(workspace.root, "log", "--format=%s").count("Promote model-v1") == 1


def test_an_edit_to_the_verdict_code_is_refused_until_the_stages_run_again(release_repo):
    workspace, remote = release_repo
    # The workspace's own copy of pipeline/verdicts.py is what its fingerprints hash.
    code = workspace.root / "pipeline" / "verdicts.py"
    code.parent.mkdir()
    code.write_text((REPO_ROOT / "pipeline" / "verdicts.py").read_text())
    git(workspace.root, "add", "pipeline")
    git(workspace.root, "commit", "-qm", "the verdict code, unchanged")
    with open(code, "a") as stream:
        stream.write("# a threshold comparison changed here\n")
    git(workspace.root, "commit", "-qam", "edit the verdict code")
    reason = refuse(workspace, remote)
    for stage in ("convert", "parity", "gate"):
        assert f"{stage}: pipeline/verdicts.py changed since the {stage}" in reason, reason
    assert "run dvc repro" in reason
    run_stage("pipeline.stages.convert", workspace)  # what dvc repro runs
    run_stage("pipeline.stages.parity", workspace)
    write_gate_verdict(workspace)
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert "promoted model-v1" in completed.stdout


def test_an_unrelated_commit_after_a_release_is_a_no_op(release_repo):
    workspace, remote = release_repo
    assert promote(workspace).returncode == 0
    (workspace.root / "NOTES.md").write_text("a typo fixed\n")
    git(workspace.root, "add", "NOTES.md")
    git(workspace.root, "commit", "-qm", "docs typo")
    before = refs(remote)
    again = promote(workspace)
    assert again.returncode == 0, again.stderr
    assert "already promoted: model-v1" in again.stdout
    assert "would serve the same model, manifest and service, so no new version" in again.stdout
    assert refs(remote) == before
    assert git(workspace.root, "tag", "--list") == "model-v1\n"


def test_rollback_restores_the_release_its_verdicts_and_params_and_a_rebuild_gives_it_back(
    release_repo,
):
    workspace, remote = release_repo
    root = workspace.root
    first_sha256 = sha256_of(workspace.candidate_dir / "model.tflite")
    assert promote(workspace).returncode == 0
    v1_gate = workspace.report_path("gate").read_text()
    assert build_candidate(workspace, "float16") != first_sha256
    assert promote(workspace).returncode == 0
    rolled = rollback_command(workspace, "model-v1")
    assert rolled.returncode == 0, rolled.stderr
    assert "params.yaml's sections that built model-v1 are restored" in rolled.stdout
    assert yaml.safe_load(workspace.params_path.read_text())["convert"]["quantization"] == "none"
    assert workspace.report_path("gate").read_text() == v1_gate  # reports describe release/
    assert git(root, "diff", "model-v1", "HEAD", "--stat", "--", "release", "reports") == ""
    assert git(root, "status", "--porcelain") == "" and refs(remote) == refs(root)
    again = promote(workspace, "--rollback", "model-v1")
    assert again.returncode == 0, again.stderr
    assert "already at model-v1" in again.stdout and refs(remote) == refs(root)
    # The candidate rolled back from needs a fresh run of its gates, like any other.
    assert "run dvc repro" in refuse(workspace, remote)
    # What `dvc repro` runs after a rollback: the stages whose params changed.
    run_stage("pipeline.stages.convert", workspace)
    run_stage("pipeline.stages.parity", workspace)
    write_gate_verdict(workspace)
    assert sha256_of(workspace.candidate_dir / "model.tflite") == first_sha256
    rebuilt = promote(workspace)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "already promoted: model-v1" in rebuilt.stdout  # the rolled-back release serves it
    assert git(root, "tag", "--list") == "model-v1\nmodel-v2\n"


def rollback_command(workspace, *args: str) -> subprocess.CompletedProcess:
    return run_stage("pipeline.rollback", workspace, check=False, arguments=args)


def test_rollback_without_a_tag_or_past_the_first_release_says_what_to_give(release_repo):
    workspace, remote = release_repo
    git(workspace.root, "tag", "model-v0")  # a tag on the project, before any release
    git(workspace.root, "push", "-q", "origin", "model-v0")
    assert promote(workspace).returncode == 0
    bare = rollback_command(workspace)
    assert bare.returncode == 2
    assert "give the release tag to return to" in bare.stderr
    assert "releases: model-v1" in bare.stderr and "model-v0" not in bare.stderr
    before = refs(remote)
    dry = rollback_command(workspace, "model-v0", "--dry-run")
    real = rollback_command(workspace, "model-v0")
    for completed in (dry, real):  # the dry run predicts the real run's refusal
        assert completed.returncode == 1
        assert "model-v0 holds no release" in completed.stderr
        assert "predates the first release; roll back to one of: model-v1\n" in completed.stderr
    assert refs(remote) == before == refs(workspace.root)


def test_a_corrupt_lfs_object_on_the_remote_is_removed_and_uploaded_again(release_repo):
    workspace, remote = release_repo
    model = workspace.candidate_dir / "model.tflite"
    oid = sha256_of(model)
    stored = remote / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\0" * model.stat().st_size)  # same size: git-lfs will not resend it
    dry = promote(workspace, "--dry-run")
    assert (
        f"remove the corrupt copy of release/model.tflite's LFS object {oid[:12]} from origin "
        f"({stored}: its bytes do not hash to its name) and upload it again" in dry.stdout
    ), dry.stdout + dry.stderr
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert f"removed the corrupt copy of release/model.tflite's LFS object {oid[:12]}" in (
        completed.stdout
    )
    assert "promoted model-v1" in completed.stdout
    assert sha256_of(stored) == oid


def test_promote_gated_here_takes_only_a_gate_verdict_produced_here_and_records_where(
    release_repo,
):
    workspace, remote = release_repo
    verdict_path = workspace.report_path("gate")
    verdict = json.loads(verdict_path.read_text())
    here = verdict["produced_on"]
    verdict["produced_on"] = {"host": "someones-laptop", "ci_run": None}
    verdict_path.write_text(json.dumps(verdict))
    reason = refuse(workspace, remote, "--gated-here")
    assert "gate: its verdict was produced on someones-laptop, not here" in reason
    assert "run `dvc repro -f -s gate` here first" in reason
    write_gate_verdict(workspace)  # the gate run again, here
    completed = promote(workspace, "--gated-here")
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads((workspace.release_dir / "manifest.json").read_text())
    assert manifest["gated_on"] == here
    assert manifest["verdicts"]["gate"]["produced_on"] == here
