"""The DVC wiring, from a fresh clone: repro, a no-op second repro, metrics, experiments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def dvc(clone: Path, *args: str) -> subprocess.CompletedProcess:
    """Run dvc in the clone with the project's Python first on PATH, as `make demo` does."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PIPELINE_WORKSPACE", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A git clone of this repository's HEAD, with a smaller demo to keep the run short."""
    clone = tmp_path_factory.mktemp("clone") / "repo"
    # The pipeline needs no Git LFS file (only docs/benchmark.png is one), and a checkout that
    # was itself cloned without git-lfs, as CI's is, holds only the pointer, not the object:
    # smudging it would fail the clone. So the clone keeps pointers, now and on later checkouts.
    subprocess.run(
        ["git", "clone", "-q", str(REPO_ROOT), str(clone)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    subprocess.run(
        ["git", "lfs", "install", "--local", "--skip-smudge"],
        cwd=clone,
        check=True,
        capture_output=True,
    )
    params_path = clone / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["demo_model"].update(train_samples=300, heldout_samples=60, epochs=3)
    params["gate"].update(requests=120)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    # The clone's own identity: `dvc exp run` commits, and CI may have no global git identity.
    for command in (
        ["config", "user.name", "Pipeline Test"],
        ["config", "user.email", "pipeline-test@example.com"],
        ["add", "params.yaml"],
        ["commit", "-qm", "smaller demo for the test"],
    ):
        subprocess.run(["git", *command], cwd=clone, check=True)
    return clone


@pytest.fixture(scope="module")
def reproduced(fresh_clone) -> Path:
    """The fresh clone after one full `dvc repro`."""
    completed = dvc(fresh_clone, "repro")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return fresh_clone


def test_repro_builds_every_stage_from_a_fresh_clone(reproduced):
    assert (reproduced / "build" / "candidate" / "model.tflite").is_file()
    assert (reproduced / "reports" / "parity.json").is_file()


def test_a_second_repro_does_nothing(reproduced):
    completed = dvc(reproduced, "repro")
    assert completed.returncode == 0
    assert "Data and pipelines are up to date." in completed.stdout
    assert "Running stage" not in completed.stdout


def test_metrics_show_lists_the_verdicts(reproduced):
    completed = dvc(reproduced, "metrics", "show", "--json")
    assert completed.returncode == 0, completed.stderr
    metrics = json.loads(completed.stdout)[""]["data"]
    for stage in ("convert", "parity", "gate"):
        assert metrics[f"reports/metrics/{stage}.json"]["data"]["passed"] is True
    assert len(metrics["reports/metrics/convert.json"]["data"]["sha"]) == 8


def test_metrics_show_fits_a_terminal(reproduced):
    completed = dvc(reproduced, "metrics", "show")
    assert completed.returncode == 0, completed.stderr
    assert max(map(len, completed.stdout.splitlines())) <= 120, completed.stdout


def test_an_experiment_with_float16_converts_and_passes_parity(reproduced):
    completed = dvc(reproduced, "exp", "run", "-S", "convert.quantization=float16")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "parity passed for float16" in completed.stdout + completed.stderr
