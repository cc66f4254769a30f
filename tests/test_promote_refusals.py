"""Promote refuses every way a candidate can differ from what was judged: its manifest, its
model file, parity's saved predictions, and each stage's verdict. The verdicts start as the
real ones of a real pipeline run; each test changes one thing, and every refusal leaves both
repositories exactly as they were."""

import numpy as np
import pytest
from release_repos import refuse
from workspaces import swap_model

from pipeline.verdicts import GATE_STAGES, read_json, write_json, write_verdict
from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def test_the_real_verdicts_are_what_promote_judges(release_repo):
    workspace, _ = release_repo
    gate = read_json(workspace.report_path("gate"))
    assert gate["passed"] and gate["enforced"] and len(gate["measures"]) > 5
    candidate = sha256_of(workspace.candidate_dir / "model.tflite")
    for stage in GATE_STAGES:
        assert read_json(workspace.report_path(stage))["candidate_sha256"] == candidate, stage


def test_a_manifest_that_names_another_model_file_is_refused(release_repo):
    workspace, remote = release_repo
    manifest_path = workspace.candidate_dir / "manifest.json"
    manifest = read_json(manifest_path)
    manifest["sha256"] = "e" * 64
    write_json(manifest_path, manifest)
    assert "the candidate's manifest names another model.tflite" in refuse(workspace, remote)


def test_a_model_file_other_than_the_one_judged_is_refused_by_every_verdict(
    release_repo, drifted_candidate_dir
):
    # A model of the same shape, its manifest consistent with it: only the verdicts can tell.
    workspace, remote = release_repo
    judged = sha256_of(workspace.candidate_dir / "model.tflite")
    other = swap_model(workspace.candidate_dir, drifted_candidate_dir)
    reason = refuse(workspace, remote)
    assert f"convert: it judged candidate {judged[:12]} but the candidate is {other[:12]}" in reason
    # Parity and the gate read the candidate: their inputs fingerprints name it too.
    for stage in ("parity", "gate"):
        assert f"{stage}: build/candidate changed since the {stage} ran" in reason, stage


@pytest.mark.parametrize("stage", GATE_STAGES)
def test_a_verdict_for_another_candidate_is_refused(release_repo, stage):
    workspace, remote = release_repo
    report = read_json(workspace.report_path(stage))
    report["candidate_sha256"] = "f" * 64
    write_json(workspace.report_path(stage), report)
    reason = refuse(workspace, remote)
    assert f"{stage}: it judged candidate ffffffffffff but the candidate is" in reason


def test_a_verdict_that_names_no_candidate_is_refused(release_repo):
    workspace, remote = release_repo
    report = read_json(workspace.report_path("gate"))
    del report["candidate_sha256"]
    write_verdict(workspace, "gate", report)
    assert "gate: it names no candidate on disk" in refuse(workspace, remote)


def test_parity_predictions_for_another_candidate_are_refused(release_repo):
    # The golden set ships parity's answers: answers for another model would fail every deploy.
    workspace, remote = release_repo
    with np.load(workspace.parity_predictions_path) as saved:
        predictions = {key: saved[key] for key in saved.files}
    predictions["candidate_sha256"] = np.array("d" * 64)
    np.savez_compressed(workspace.parity_predictions_path, **predictions)
    # The gate's fingerprint names the predictions file: a gate verdict written after they
    # changed (its own check of them aside) leaves promote's check of them the last word.
    write_verdict(workspace, "gate", read_json(workspace.report_path("gate")))
    reason = refuse(workspace, remote)
    assert "parity's saved predictions are for another candidate" in reason
    assert "nothing was pushed" in reason


def test_a_failed_gate_is_refused(release_repo):
    workspace, remote = release_repo
    report = read_json(workspace.report_path("gate"))
    report["measures"]["oom_kills"].update(value=1, passed=False)
    report["passed"] = False
    write_verdict(workspace, "gate", report)
    reason = refuse(workspace, remote)
    assert "gate failed: oom_kills 1 (needs <= 0); the candidate does not fit the plan" in reason


def test_a_gate_that_was_not_enforced_by_the_kernel_is_refused(release_repo):
    workspace, remote = release_repo
    report = read_json(workspace.report_path("gate"))
    report["enforced"] = False
    write_verdict(workspace, "gate", report)
    assert "gate: the plan's memory and CPU limits were not both enforced" in refuse(
        workspace, remote
    )
