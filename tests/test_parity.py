"""The parity stage, for real: Keras against the served predictor on the held-out set."""

import shutil

import numpy as np
import pytest
from workspaces import run_stage, swap_model, workspace_like

from pipeline.verdicts import read_json
from service.bundle import sha256_of

pytestmark = pytest.mark.slow
# The measures every quantization mode has a threshold for (parity.thresholds.<mode>).
PARITY_MEASURES = (
    "max_abs_diff",
    "mean_abs_diff",
    "top1_agreement",
    "min_class_agreement",
    "accuracy_drop",
)


@pytest.fixture(scope="module")
def parity_workspace(checked_workspace):
    """The demo workspace after a real parity run."""
    return checked_workspace


def test_demo_passes_with_every_measure_judged(parity_workspace):
    report = read_json(parity_workspace.report_path("parity"))
    assert report["passed"] is True
    assert report["candidate_sha256"] == sha256_of(parity_workspace.candidate_dir / "model.tflite")
    judged = {
        "max_abs_diff",
        "mean_abs_diff",
        "top1_agreement",
        "min_class_agreement",
        "accuracy_drop",
        "label_order",
        "accuracy",  # the tests' demo sets the optional parity.min_accuracy
    }
    # Every held-out sample through the batch-1 model and through the batch-N one.
    assert set(report["measures"]) == judged | {f"batched_{name}" for name in judged}
    assert report["batch_sizes"] == [1, 4]
    assert report["batched_sha256"] == sha256_of(
        parity_workspace.candidate_dir / "model_batched.tflite"
    )
    for measure in report["measures"].values():
        assert {"value", "threshold", "rule", "passed"} <= set(measure)
        assert measure["passed"] is True
    assert report["measures"]["label_order"]["value"] == 0.0  # the demo's labels are in order
    assert set(report["accuracy"]) == {"keras", "tflite", "tflite_batched"}
    assert report["measures"]["max_abs_diff"]["value"] < 1e-4
    assert report["measures"]["batched_max_abs_diff"]["value"] < 1e-4
    assert report["samples"] == 60 and len(report["per_class"]) == 10
    assert report["output_kind"] == "probability" and report["served_as"] == "probability"


def test_writes_plots_and_the_predictions_the_gate_checks_against(parity_workspace):
    per_class = (parity_workspace.reports_dir / "parity_per_class.csv").read_text().splitlines()
    assert per_class[0] == "label,agreement,keras_accuracy,tflite_accuracy,samples"
    assert len(per_class) == 11
    assert sum(int(line.rsplit(",", 1)[1]) for line in per_class[1:]) == 60
    confidence = (parity_workspace.reports_dir / "parity_confidence.csv").read_text().splitlines()
    assert len(confidence) == 61
    with np.load(parity_workspace.parity_predictions_path) as predictions:
        assert predictions["probabilities"].shape == (60, 10)
        np.testing.assert_allclose(predictions["probabilities"].sum(axis=1), 1.0, atol=1e-4)
        assert (
            str(predictions["candidate_sha256"])
            == read_json(parity_workspace.report_path("parity"))["candidate_sha256"]
        )


def test_a_candidate_that_drifts_fails_every_measure_naming_each(
    demo_workspace, drifted_candidate_dir, tmp_path
):
    # The demo's own network with noise of its weights' size: the shape, labels and source
    # model are the candidate's, its answers are not.
    workspace = workspace_like(demo_workspace, tmp_path / "ws")
    sha256 = swap_model(workspace.candidate_dir, drifted_candidate_dir)
    completed = run_stage("pipeline.stages.parity", workspace, check=False)
    assert completed.returncode != 0
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("parity failed for none: max_abs_diff")
    report = read_json(workspace.report_path("parity"))
    assert report["passed"] is False and report["candidate_sha256"] == sha256
    for name in PARITY_MEASURES:
        assert report["measures"][name]["passed"] is False, (name, report["measures"][name])
        assert f"{name} " in last_line, name
    # Its predictions are saved under its own sha256: nothing downstream can mistake them.
    with np.load(workspace.parity_predictions_path) as predictions:
        assert str(predictions["candidate_sha256"]) == sha256


def test_a_candidate_from_another_model_is_refused(demo_workspace, tmp_path):
    workspace = workspace_like(demo_workspace, tmp_path / "ws")
    manifest_path = workspace.candidate_dir / "manifest.json"
    manifest_path.write_text(
        manifest_path.read_text().replace(
            read_json(manifest_path)["source_model"]["sha256"], "0" * 64
        )
    )
    completed = run_stage("pipeline.stages.parity", workspace, check=False)
    assert completed.returncode != 0
    assert "converted from another model" in completed.stderr.strip().splitlines()[-1]


def test_a_missing_candidate_says_run_convert(demo_workspace, tmp_path):
    workspace = workspace_like(demo_workspace, tmp_path / "ws")
    shutil.rmtree(workspace.candidate_dir)
    completed = run_stage("pipeline.stages.parity", workspace, check=False)
    assert completed.returncode != 0
    assert "manifest.json is missing" in completed.stderr.strip().splitlines()[-1]
