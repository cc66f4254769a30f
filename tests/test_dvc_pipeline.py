"""The DVC wiring, from a fresh clone: repro, a no-op second repro, metrics, experiments, the
same candidate from a second clone, and a user's own model by params.yaml alone."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from clones import SHORT_GATE, clone_of, dvc, git

from pipeline.paths import REPO_ROOT
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
    completed = dvc(reproduced_copy, "exp", "run", "-S", "convert.quantization=float16")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "parity passed for float16" in completed.stdout + completed.stderr


def test_a_users_own_model_by_params_alone_never_trains_the_demo(tmp_path_factory):
    import keras
    from user_files import write_user_files

    clone = clone_of(REPO_ROOT, tmp_path_factory.mktemp("user") / "repo")
    params_path = clone / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["gate"].update(SHORT_GATE)
    params["parity"]["min_accuracy"] = None  # random weights: no accuracy to speak of
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="softmax")])
    files = write_user_files(
        tmp_path_factory.mktemp("downloads"),
        model,
        normaliser=None,
        labels_as="txt",
        integer_y=True,
    )
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("PIPELINE_WORKSPACE", None)
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.init",
            "--model",
            files["model"],
            "--labels",
            files["labels"],
            "--heldout",
            files["heldout"],
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    assert "git add model.dvc" in init.stdout
    assert yaml.safe_load(params_path.read_text())["inputs"]["normaliser"] == "none"
    # git holds only the .dvc file (staged by DVC's autostage), DVC the files themselves.
    assert "model.dvc" in git(clone, "diff", "--cached", "--name-only")
    assert git(clone, "ls-files", "model") == ""

    completed = dvc(clone, "repro")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "demo_model" not in completed.stdout
    assert not (clone / "data" / "demo").exists()
    metrics = json.loads(dvc(clone, "metrics", "show", "--json").stdout)[""]["data"]
    for stage in ("convert", "parity", "gate"):
        assert metrics[f"reports/metrics/{stage}.json"]["data"]["passed"] is True
    manifest = json.loads((clone / "build" / "candidate" / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [20]
    assert not git(clone, "diff", "--name-only", "dvc.yaml")
