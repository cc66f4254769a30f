"""The gate, for real: render.yaml's gunicorn inside a real memory cgroup, real requests."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from conftest import workspace_like

from pipeline.memory_cgroup import V1_ROOT, _own_group
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.reports import read_json
from service.bundle import sha256_of

pytestmark = pytest.mark.slow
QUICK = {"requests": 120, "concurrency": 4, "cold_start_deadline_seconds": 30}


def leftovers(workspace) -> tuple[list[str], list[int]]:
    """Gate cgroups and service processes still present after a run: both must be empty."""
    own = _own_group("memory")
    parent = V1_ROOT / own.lstrip("/") if own else None
    groups = [p.name for p in parent.iterdir() if p.name.startswith("gate-")] if parent else []
    serving = []
    for process in psutil.process_iter(["pid", "cmdline", "environ"]):
        environ = process.info.get("environ") or {}
        if environ.get("MODEL_DIR") == str(workspace.candidate_dir):
            serving.append(process.info["pid"])
    return groups, serving


def gate(workspace, **env):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.gate"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def gate_under_load(workspace) -> subprocess.Popen:
    """A gate running in the background, returned once its load has begun."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.gate"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:  # progress lines mean the load has begun
        if line.startswith("gate load:"):
            break
    return process


def failure_line(completed) -> str:
    assert completed.returncode != 0, completed.stdout
    return completed.stderr.strip().splitlines()[-1]


def test_the_demo_passes_in_enforced_mode_with_the_kernels_figures(checked_workspace, tmp_path):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=QUICK)
    completed = gate(workspace)
    assert completed.returncode == 0, completed.stderr
    report = read_json(workspace.report_path("gate"))
    assert report["passed"] and report["enforced"] and report["backend"] == "cgroup-v1"
    assert report["candidate_sha256"] == sha256_of(workspace.candidate_dir / "model.tflite")
    assert 20 < report["figures"]["peak_memory_mb"] < 512
    assert report["measures"]["oom_kills"]["value"] == 0
    assert report["measures"]["wrong_answers"]["value"] == 0
    assert report["figures"]["workers"] == 1 and report["capacity"]["workers_that_fit"] >= 1
    assert "gunicorn service.app:app" in report["start_command"]
    assert "gate load: 120/120" in completed.stdout
    assert leftovers(workspace) == ([], [])


def test_the_worker_count_is_the_one_render_yaml_sets_not_the_callers_shell(
    checked_workspace, tmp_path
):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=QUICK)
    blueprint = yaml.safe_load(workspace.render_yaml_path.read_text())
    for variable in blueprint["services"][0]["envVars"]:
        if variable["key"] == "WEB_CONCURRENCY":
            variable["value"] = "2"
    workspace.render_yaml_path.write_text(yaml.safe_dump(blueprint))
    completed = gate(workspace, WEB_CONCURRENCY="5")
    assert completed.returncode == 0, completed.stderr
    report = read_json(workspace.report_path("gate"))
    assert report["figures"]["workers"] == 2 and len(report["figures"]["worker_uss_mb"]) == 2
    assert report["render_env"]["WEB_CONCURRENCY"] == "2"
    assert leftovers(workspace) == ([], [])


def test_answers_from_a_model_other_than_the_candidate_fail_even_when_they_agree(
    checked_workspace, tmp_path
):
    # The same network with a few bytes appended: it answers exactly as the candidate does,
    # but it is not the file the verdict will name, so the gate must not pass it.
    other = tmp_path / "other-bundle"
    shutil.copytree(checked_workspace.candidate_dir, other)
    with open(other / "model.tflite", "ab") as model:
        model.write(b"\0" * 16)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["sha256"] = sha256_of(other / "model.tflite")
    (other / "manifest.json").write_text(json.dumps(manifest))
    gate_settings = {**QUICK, "service_env": {"MODEL_DIR": str(other)}}
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=gate_settings)
    assert "wrong_answers 120" in failure_line(gate(workspace))
    report = read_json(workspace.report_path("gate"))
    first = report["figures"]["first_wrong_answers"][0]
    assert f"served by model {manifest['sha256'][:12]}" in first
    assert f"not the candidate {report['candidate_sha256'][:12]}" in first


def test_a_service_that_needs_more_than_the_limit_is_reported_as_oom_killed(
    checked_workspace, tmp_path
):
    # The service needs ~30 MB of its own (anon) memory; 20 MB cannot hold it.
    workspace = workspace_like(
        checked_workspace, tmp_path / "ws", gate={**QUICK, "memory_limit_mb": 20}
    )
    reason = failure_line(gate(workspace))
    assert "the kernel OOM-killed" in reason and "in a 20 MB group" in reason
    report = read_json(workspace.report_path("gate"))
    assert report["passed"] is False and report["measures"]["oom_kills"]["value"] >= 1
    assert 15 <= report["figures"]["peak_memory_mb"] <= 20
    assert leftovers(workspace) == ([], [])


def test_a_latency_threshold_below_the_measured_p95_fails(checked_workspace, tmp_path):
    workspace = workspace_like(
        checked_workspace, tmp_path / "ws", gate={**QUICK, "max_latency_p95_ms": 0.001}
    )
    assert "latency_p95_ms" in failure_line(gate(workspace))
    measure = read_json(workspace.report_path("gate"))["measures"]["latency_p95_ms"]
    assert measure["passed"] is False and measure["value"] > 0.001
    assert leftovers(workspace) == ([], [])


def test_a_service_that_never_becomes_healthy_fails_within_the_deadline(
    checked_workspace, tmp_path
):
    # The service starts but finds no bundle where it looks, so health stays 503.
    gate_settings = {
        **QUICK,
        "cold_start_deadline_seconds": 3,
        "service_env": {"MODEL_DIR": str(tmp_path / "no-bundle")},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=gate_settings)
    started = time.monotonic()
    reason = failure_line(gate(workspace))
    assert time.monotonic() - started < 20
    assert "not healthy within gate.cold_start_deadline_seconds=3" in reason
    assert "HTTP 503" in reason and "manifest.json is missing" in reason
    assert leftovers(workspace) == ([], [])


def test_a_worker_that_dies_under_load_is_noticed(checked_workspace, tmp_path):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate={**QUICK, "requests": 4000})
    process = gate_under_load(workspace)
    workers = [
        p
        for p in psutil.process_iter(["environ", "cmdline"])
        if (p.info.get("environ") or {}).get("MODEL_DIR") == str(workspace.candidate_dir)
        and p.children() == []
        and "gunicorn" in " ".join(p.info["cmdline"] or [])
    ]
    assert workers, "a gunicorn worker is serving"
    workers[0].send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    report = read_json(workspace.report_path("gate"))
    assert report["measures"]["workers_replaced"]["passed"] is False
    assert "workers_replaced" in stderr.strip().splitlines()[-1]
    assert leftovers(workspace) == ([], [])


def test_ctrl_c_removes_the_group_and_every_process(checked_workspace, tmp_path):
    workspace = workspace_like(
        checked_workspace, tmp_path / "ws", gate={**QUICK, "requests": 20000}
    )
    process = gate_under_load(workspace)
    assert leftovers(workspace)[0], "the gate's cgroup exists while it runs"
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert leftovers(workspace) == ([], [])


def test_without_an_enforcing_cgroup_the_gate_says_so_and_can_require_it(
    checked_workspace, tmp_path
):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=QUICK)
    completed = gate(workspace, MEMORY_CGROUP_BACKEND="none")
    assert "NOT enforced" in completed.stderr
    assert "not enforced by the kernel (gate.require_enforced is on)" in failure_line(completed)
    relaxed = workspace_like(
        checked_workspace, tmp_path / "relaxed", gate={**QUICK, "require_enforced": False}
    )
    completed = gate(relaxed, MEMORY_CGROUP_BACKEND="none")
    assert completed.returncode == 0, completed.stderr
    report = read_json(relaxed.report_path("gate"))
    assert report["enforced"] is False and report["backend"] == "none"
    assert report["figures"]["peak_memory_mb"] > 20
