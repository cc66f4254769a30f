"""The DVC wiring, from a fresh clone: repro, a no-op second repro, metrics, experiments and the
same candidate from a second clone (a user's own model by params.yaml alone:
test_user_release.py)."""

import json

import pytest
from clones import clone_of, dvc, git

from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def test_repro_builds_every_stage_from_a_fresh_clone(reproduced):
    assert (reproduced / "build" / "candidate" / "model.tflite").is_file()
    assert (reproduced / "reports" / "parity.json").is_file()
    assert (reproduced / "demo" / "dvc.lock").is_file()


def test_a_second_clone_rebuilds_the_same_candidate_and_leaves_git_clean(
    reproduced_copy, tmp_path_factory
):
    git(reproduced_copy, "add", "-A")
    git(reproduced_copy, "commit", "-qm", "the pipeline's results")
    second = clone_of(reproduced_copy, tmp_path_factory.mktemp("second") / "repo")
    completed = dvc(second, "repro")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Running stage 'demo/dvc.yaml:demo_model'" in completed.stdout
    first_sha = sha256_of(reproduced_copy / "build" / "candidate" / "model.tflite")
    assert sha256_of(second / "build" / "candidate" / "model.tflite") == first_sha
    assert git(second, "status", "--porcelain") == ""


def test_a_second_repro_does_nothing(reproduced_copy):
    completed = dvc(reproduced_copy, "repro")
    assert completed.returncode == 0
    assert "Data and pipelines are up to date." in completed.stdout
    assert "Running stage" not in completed.stdout


def test_metrics_show_lists_the_verdicts(reproduced_copy):
    completed = dvc(reproduced_copy, "metrics", "show", "--json")
    assert completed.returncode == 0, completed.stderr
    metrics = json.loads(completed.stdout)[""]["data"]
    for stage in ("convert", "parity", "gate"):
        assert metrics[f"reports/metrics/{stage}.json"]["data"]["passed"] is True
    assert len(metrics["reports/metrics/convert.json"]["data"]["sha"]) == 8


def test_metrics_show_fits_a_terminal(reproduced_copy):
    completed = dvc(reproduced_copy, "metrics", "show")
    assert completed.returncode == 0, completed.stderr
    assert max(map(len, completed.stdout.splitlines())) <= 120, completed.stdout


def test_an_experiment_with_float16_converts_and_passes_parity(reproduced_copy):
    # Up to parity: the experiment is DVC's, the gate on a new candidate is tested elsewhere.
    completed = dvc(reproduced_copy, "exp", "run", "-S", "convert.quantization=float16", "parity")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "parity passed for float16" in completed.stdout + completed.stderr
