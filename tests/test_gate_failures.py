"""The gate fails, naming the figure, on services that miss the plan: slow to start,
thrashing at the limit, too large, slow health under saturation, the wrong model's answers,
never healthy, a worker dying under load; Ctrl-C leaves nothing behind.

Services built to fail are the real service wrapped by a small WSGI module, started by a
render.yaml of the test's own. Every assertion is on what a user of the gate sees: exit status,
the one-line reason, reports/gate.json, and nothing left behind.
"""

import json
import os
import shutil
import signal
import time

import psutil
import pytest
from gate_helpers import (
    PLANS,
    QUICK,
    failure_line,
    gate,
    gate_under_load,
    leftovers,
    serving_wrapped_app,
)
from workspaces import workspace_like

from pipeline.cgroups import evict_from_page_cache
from pipeline.gate.preflight import bundle_mb
from pipeline.verdicts import read_json
from service.bundle import sha256_of

# Each test answers only for the gate groups it leaves: tests/conftest.py's gate_groups_before.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("gate_groups_before")]


def test_a_service_slower_to_start_than_the_plan_allows_fails_naming_the_figure(
    checked_workspace, tmp_path
):
    # 0.3 s of CPU at import: 0.3 s on whole CPUs, about 3 s at Render free's 0.1 CPU.
    settings = {
        **QUICK,
        "plan": "free",
        "max_cold_start_seconds": 2.0,
        "service_env": {**QUICK["service_env"], "TEST_APP_BURN_CPU_SECONDS": "0.3"},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(serving_wrapped_app(workspace, tmp_path)))
    assert "cold_start_seconds" in reason and "(needs <= 2.0)" in reason
    report = read_json(workspace.report_path("gate"))
    assert report["measures"]["cold_start_seconds"]["value"] > 2.0
    assert leftovers(workspace) == ([], [])


def test_a_service_that_thrashes_at_the_limit_is_said_to_in_words(checked_workspace, tmp_path):
    # Every JSON request reads a 200 MB file: page cache fills the 200 MB group, the kernel
    # reclaims it again and again (failcnt climbs), and nothing is OOM-killed.
    big_file = tmp_path / "big.bin"
    big_file.write_bytes(os.urandom(200 * 2**20))
    evict_from_page_cache(big_file)  # else its pages stay charged to this test's own group
    plans = {"small": {**PLANS["roomy"], "memory_mb": 200, "max_peak_memory_mb": 150}}
    settings = {
        **QUICK,
        "plan": "small",
        "plans": plans,
        "service_env": {**QUICK["service_env"], "TEST_APP_READ_FILE": str(big_file)},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(serving_wrapped_app(workspace, tmp_path)))
    assert "the service thrashed at the 200 MB limit: the group hit it" in reason
    assert "OOM-killed" not in reason
    report = read_json(workspace.report_path("gate"))
    assert report["measures"]["oom_kills"]["value"] == 0 and report["figures"]["failcnt"] > 0
    assert leftovers(workspace) == ([], [])


def test_a_bundle_larger_than_the_budget_is_refused_before_the_service_starts(
    checked_workspace, tmp_path
):
    plans = {"tiny": {**PLANS["roomy"], "memory_mb": 64, "max_peak_memory_mb": 10}}
    settings = {**QUICK, "plan": "tiny", "plans": plans}
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    completed = gate(workspace)
    reason = failure_line(completed)
    bundle = bundle_mb(checked_workspace.candidate_dir)
    assert f"the model bundle ({bundle:.1f} MB) plus the lite runtime's measured baseline" in reason
    assert "over the 10 MB budget of plan tiny (64 MB" in reason
    assert "health attempt" not in completed.stdout, "the service was never started"
    report = read_json(workspace.report_path("gate"))
    assert report["passed"] is False and report["measures"] == {}
    assert report["plan"]["name"] == "tiny" and report["plan_fit"]["recommended"] is None
    assert report["series"]["memory"] == {"seconds": [], "usage_mb": []}, "same shape, empty"
    assert leftovers(workspace) == ([], [])


def test_health_checks_slower_than_the_threshold_under_saturation_fail(checked_workspace, tmp_path):
    # One request at a time, 0.3 s each: a health check waits behind the queue.
    settings = {
        **QUICK,
        "requests": 12,
        "max_latency_p95_ms": 10_000,
        "max_latency_p99_ms": 10_000,
        "min_throughput_rps": 0,
        "max_health_latency_seconds": 0.5,
        "cost_saturation_requests": 16,  # each waits its 0.3 s in turn: not what is judged
        "service_env": {**QUICK["service_env"], "TEST_APP_SERIAL_SECONDS": "0.3"},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(serving_wrapped_app(workspace, tmp_path)))
    assert "health_latency_saturated_seconds" in reason and "(needs <= 0.5)" in reason
    report = read_json(workspace.report_path("gate"))
    assert report["measures"]["health_latency_saturated_seconds"]["value"] > 0.5
    assert report["measures"]["wrong_answers"]["value"] == 0
    assert leftovers(workspace) == ([], [])


def test_health_checks_that_fail_under_load_fail_the_gate_whatever_their_speed(
    checked_workspace, tmp_path
):
    # Health answers 503 at once while a prediction is in flight: fast, and still a failed
    # check to Render. However few they are, no percentile may hide them.
    settings = {
        **QUICK,
        "service_env": {**QUICK["service_env"], "TEST_APP_HEALTH_503_WHILE_BUSY": "1"},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(serving_wrapped_app(workspace, tmp_path)))
    assert "health_latency_saturated_seconds 5 (needs <= " in reason, reason
    assert "health probe(s) failed with no quota on the service, first: HTTP 503" in reason
    report = read_json(workspace.report_path("gate"))
    assert report["figures"]["cost"]["health_probes_failed"] > 0
    assert report["measures"]["wrong_answers"]["value"] == 0
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
    assert "wrong_answers 40" in failure_line(gate(workspace))
    report = read_json(workspace.report_path("gate"))
    first = report["figures"]["first_wrong_answers"][0]
    assert f"served by model {manifest['sha256'][:12]}" in first
    assert f"not the candidate {report['candidate_sha256'][:12]}" in first


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
    assert time.monotonic() - started < 30
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
    # Interrupted during the cost phase's load: a group of the gate's with a service under load
    # (the throttled run's group is set up and torn down by the same resource_limit).
    workspace = workspace_like(
        checked_workspace, tmp_path / "ws", gate={**QUICK, "requests": 20000}
    )
    process = gate_under_load(workspace, load="cost: load unthrottled")
    assert leftovers(workspace)[0], "the gate's cgroup exists while it runs"
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert leftovers(workspace) == ([], [])
