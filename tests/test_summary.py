"""The summary: PASSED only for the current candidate and inputs; stale and not run otherwise."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from workspaces import make_workspace, run_stage

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.verdicts import write_verdict
from service.bundle import sha256_of


@pytest.fixture
def judged_workspace(tmp_path) -> Workspace:
    """A workspace whose three gate stages all passed for its candidate and inputs."""
    inputs_dir = tmp_path / "inputs"
    inputs_dir.mkdir()
    inputs = {}
    for key in ("model", "label_encoder", "normaliser", "heldout"):
        (inputs_dir / key).write_bytes(key.encode())
        inputs[key] = str(inputs_dir / key)
    workspace = make_workspace(tmp_path / "repo", inputs=inputs)
    workspace.candidate_dir.mkdir(parents=True)
    (workspace.candidate_dir / "model.tflite").write_bytes(b"a candidate")
    (workspace.parity_predictions_path.parent).mkdir(parents=True)
    workspace.parity_predictions_path.write_bytes(b"predictions")
    sha256 = sha256_of(workspace.candidate_dir / "model.tflite")
    for stage in ("convert", "parity", "gate"):
        write_verdict(workspace, stage, {"passed": True, "candidate_sha256": sha256})
    return workspace


def summary(workspace: Workspace) -> tuple[int, dict[str, str]]:
    completed = run_stage("pipeline.summary", workspace, check=False)
    rows = {}
    for line in completed.stdout.splitlines()[1:]:
        stage, rest = line.split(None, 1)
        rows[stage] = rest
    return completed.returncode, rows


def test_every_stage_passed_for_the_current_candidate(judged_workspace):
    code, rows = summary(judged_workspace)
    assert code == 0
    assert all(row.startswith("PASSED") for row in rows.values()), rows


def next_steps(workspace: Workspace) -> subprocess.CompletedProcess:
    """`python -m pipeline.summary --next-steps`, as `make demo` ends."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.summary", "--next-steps"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
    )


def test_make_demo_ends_with_the_commands_to_run_next(judged_workspace):
    completed = next_steps(judged_workspace)
    assert completed.returncode == 0
    tail = completed.stdout.split("Next steps", 1)[1]
    for command in (
        "make serve",
        "make report",
        "reports/release.html",
        "python -m pipeline.init --model",
        "--heldout",
        ". .venv/bin/activate",
    ):
        assert command in completed.stdout.split("gate", 1)[1], command
    assert completed.stdout.rstrip().endswith(tail.rstrip().splitlines()[-1])


def test_a_failed_demo_ends_with_what_to_fix_not_what_to_do_next(judged_workspace):
    write_verdict(judged_workspace, "gate", {"passed": False, "reason": "OOM-killed at 512 MB"})
    completed = next_steps(judged_workspace)
    assert completed.returncode == 1
    assert "OOM-killed at 512 MB" in completed.stdout and "make serve" not in completed.stdout
    assert "Next step: fix what the failed stage above names" in completed.stdout


def test_a_failed_convert_leaves_no_downstream_pass(judged_workspace):
    write_verdict(judged_workspace, "convert", {"passed": False, "reason": "conversion crashed"})
    shutil.rmtree(judged_workspace.candidate_dir)  # DVC removes a stage's outs before it runs
    code, rows = summary(judged_workspace)
    assert code == 1
    assert rows["convert"].startswith("FAILED") and "conversion crashed" in rows["convert"]
    # The failed verdict removed the later stages' verdicts, for `dvc metrics show` too.
    assert not judged_workspace.report_path("parity").exists()
    assert rows["parity"].startswith("not run") and rows["gate"].startswith("not run")


def test_a_candidate_gone_since_parity_ran_makes_parity_stale(judged_workspace):
    shutil.rmtree(judged_workspace.candidate_dir)
    code, rows = summary(judged_workspace)
    assert code == 1
    assert rows["convert"].startswith("stale") and "it is gone" in rows["convert"]
    assert rows["parity"].startswith("stale") and "build/candidate is missing" in rows["parity"]


def test_a_missing_input_and_removed_verdict_read_not_run_and_stale(judged_workspace):
    # DVC removes reports/convert.json when an input is missing.
    judged_workspace.report_path("convert").unlink()
    model_input = judged_workspace.resolve(str(judged_workspace.root.parent / "inputs" / "model"))
    model_input.unlink()
    code, rows = summary(judged_workspace)
    assert code == 1
    assert rows["convert"].startswith("not run")
    # The user's files are one folder dependency (inputs.folder): a file gone changes it.
    assert (
        rows["parity"].startswith("stale")
        and "inputs changed since the parity ran" in (rows["parity"])
    )
    assert rows["gate"].startswith("stale") and "rests on convert" in rows["gate"]


def test_a_params_change_makes_the_gate_stale(judged_workspace):
    params = yaml.safe_load(judged_workspace.params_path.read_text())
    params["gate"]["plans"]["free"]["max_peak_memory_mb"] = 100
    judged_workspace.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    code, rows = summary(judged_workspace)
    assert code == 1
    assert rows["gate"] == (
        "stale    params.yaml gate.plans.free.max_peak_memory_mb changed since the gate ran"
    )
    assert rows["convert"].startswith("PASSED") and rows["parity"].startswith("PASSED")


def test_a_gate_verdict_from_another_machine_says_so(judged_workspace):
    sha256 = sha256_of(judged_workspace.candidate_dir / "model.tflite")
    machine = {
        "id": "0" * 12,
        "cpu_model": "Some Other CPU",
        "cores": 64,
        "cgroup_backend": "cgroup-v2",
        "measured_at": "2026-01-02T03:04:05+00:00",
    }
    verdict = {"passed": True, "candidate_sha256": sha256, "machine": machine, "measures": {}}
    write_verdict(judged_workspace, "gate", verdict)
    _, rows = summary(judged_workspace)
    assert rows["gate"].startswith("PASSED")
    assert (
        "NOT measured on this machine: measured on another machine (Some Other CPU, 64 cores, "
        "cgroup-v2) at 2026-01-02T03:04:05+00:00" in rows["gate"]
    )


@pytest.mark.parametrize("repro_exit, summary_exit, make_error", [(3, 1, 3), (0, 1, 1), (0, 0, 0)])
def test_make_demo_shows_the_summary_whatever_repro_returns(
    tmp_path, repro_exit, summary_exit, make_error
):
    # Stand-ins for the venv's dvc and python record that each ran; repro's failure wins.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, code in (("dvc", repro_exit), ("python", summary_exit)):
        (fake_bin / name).write_text(f'#!/bin/sh\necho "{name} $*"\nexit {code}\n')
        (fake_bin / name).chmod(0o755)
    stamp = tmp_path / "installed"
    stamp.touch()
    completed = subprocess.run(
        ["make", "--no-print-directory", "demo", f"BIN={fake_bin}", f"STAMP={stamp}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.stdout.splitlines()[-2:] == [
        "dvc repro",
        "python -m pipeline.summary --next-steps",
    ]
    assert completed.returncode == (2 if make_error else 0)
    assert (f"demo] Error {make_error}" in completed.stderr) == bool(make_error)
