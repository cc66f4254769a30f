"""The gate, for real: render.yaml's command under a plan's memory and CPU limits, real requests.

What a passing gate reports, the worst case it sends, the worker count it starts, the OOM kill
it fails on, the plans it knows, and what it says without an enforcing cgroup. Every assertion
is on what a user of the gate sees: exit status, the one-line reason, reports/gate.json, and
nothing left behind.
"""

import os
import subprocess
import sys

import pytest
import yaml
from gate_helpers import (
    FREE_QUICK,
    PLANS,
    QUICK,
    failure_line,
    gate,
    leftovers,
    serving_wrapped_app,
)
from workspaces import workspace_like

from benchmarks.gate_steadiness import MAX_RATIO, TIMINGS, busy_processes
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.verdicts import read_json
from service.bundle import sha256_of

# Each test answers only for the gate groups it leaves: tests/conftest.py's gate_groups_before.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("gate_groups_before")]


def test_the_demo_on_render_free_reports_plan_limits_series_and_fit(checked_workspace, tmp_path):
    # About the report, not about latency: health under saturation has its own tests (here and
    # in test_hostile_traffic.py), so no wall-clock threshold may fail this one on a busy host.
    settings = {
        **QUICK,
        "plan": "free",
        "max_cold_start_seconds": 600,
        "max_health_latency_seconds": 600,
        "max_latency_p95_ms": 600_000,
        "max_latency_p99_ms": 600_000,
        "min_throughput_rps": 0,
        # CPU per request measured inside a 0.1 CPU group is itself unsteady on a busy host.
        "min_sustainable_rps": 0,
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    completed = gate(workspace)
    assert completed.returncode == 0, completed.stderr
    report = read_json(workspace.report_path("gate"))
    assert report["passed"] and report["candidate_sha256"] == sha256_of(
        workspace.candidate_dir / "model.tflite"
    )
    free = {"name": "free", "memory_mb": 512, "cpu_share": 0.1, "price_usd_month": 0}
    assert report["plan"] == free
    assert report["limits"]["memory"]["limit_mb"] == 512 and report["limits"]["memory"]["enforced"]
    assert report["limits"]["cpu"] | {"backend": None} == {
        "share": 0.1,
        "enforced": True,
        "backend": None,
    }
    assert report["figures"]["cpu_throttled_periods"] > 0, "the kernel throttled the service"
    assert report["machine"]["cores"] == os.cpu_count()
    assert report["machine"]["cgroup_backend"] == report["backend"]
    # Judged on the CPU cost at 0.1 CPU; the throttled run's own wall times reported beside.
    cost, throttled = report["figures"]["cost"], report["figures"]["throttled"]
    assert (
        report["measures"]["cold_start_seconds"]["value"]
        >= 9 * cost["least_cold_start_cpu_seconds"]
    )
    assert throttled["cold_start_seconds"] > 0 and throttled["latency_p95_ms"] > 0
    assert {"cost: cheapest cold start", "throttled: typical load"} <= set(
        report["figures"]["interference"]
    )
    for name in ("cold_start_seconds", "health_latency_saturated_seconds", "sustainable_rps"):
        assert report["measures"][name]["value"] > 0, name  # measured and reported
    # The sustainable rate: 0.1 CPU over what an answer costs with the queue kept full.
    assert cost["saturation_clients"] == 16 and cost["cpu_ms_per_request_saturated"] > 0
    assert report["measures"]["sustainable_rps"]["value"] == pytest.approx(
        100 / cost["cpu_ms_per_request_saturated"], abs=0.1
    )
    assert (
        report["measures"]["worst_case_memory_mb"]["value"]
        >= report["measures"]["peak_memory_mb"]["value"]
    )
    kinds = report["figures"]["worst_case"]["requests"]
    assert "JSON empty lists, largest body" in kinds and len(kinds) == 5
    memory, latency = report["series"]["memory"], report["series"]["latency_ms"]
    assert 0 < len(memory["seconds"]) == len(memory["usage_mb"]) <= 300
    assert max(memory["usage_mb"]) <= report["measures"]["worst_case_memory_mb"]["value"] + 1
    assert len(latency["counts"]) <= 40 and len(latency["edges"]) == len(latency["counts"]) + 1
    assert sum(latency["counts"]) == 40
    fit = report["plan_fit"]
    assert fit["target_rps"] == 5.0 and [p["name"] for p in fit["plans"]] == list(PLANS)
    assert fit["recommended"] == {"plan": "free", "workers": 1, "instances": 1}
    assert "gate passed on plan free" in completed.stdout and "free x1" in completed.stdout
    table = subprocess.run(
        [sys.executable, "-m", "pipeline.summary"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
    ).stdout
    assert "on free; for 5 req/s: free x1, 1 worker(s)" in table
    assert leftovers(workspace) == ([], [])


def test_a_worst_case_that_exceeds_the_group_is_oom_killed_and_fails_on_oom_kills(
    checked_workspace, tmp_path
):
    # The converted demo, served as render.yaml says, with the service's own limits opened up:
    # eight 20 MB JSON bodies parsed at once (LARGE_PARSES) and admitted together (a latency
    # budget of 100 s). Typical requests fit in 150 MB; the worst case cannot, and the kernel
    # OOM-kills the worker (about 125 MB with one parse at a time, several hundred with eight).
    plans = {"small": {**PLANS["roomy"], "memory_mb": 150, "max_peak_memory_mb": 130}}
    settings = {
        **QUICK,
        "plan": "small",
        "plans": plans,
        "service_env": {"LARGE_PARSES": "8", "LATENCY_BUDGET_MS": "100000"},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(workspace))
    assert "OOM-killed" in reason and "in a 150 MB group" in reason
    report = read_json(workspace.report_path("gate"))
    oom_kills = report["measures"]["oom_kills"]
    assert oom_kills["passed"] is False and oom_kills["value"] > 0, oom_kills
    assert report["measures"]["peak_memory_mb"]["passed"], "typical requests fit"
    assert report["measures"]["worst_case_memory_mb"]["passed"] is False
    assert report["passed"] is False and report["plan_fit"]["recommended"] is None
    assert not any("Handling signal: term" in line for line in report["service_log_tail"])
    assert leftovers(workspace) == ([], [])


def test_the_worst_case_is_the_largest_body_the_service_takes_in_not_one_it_refuses(
    checked_workspace, tmp_path
):
    # A service with its own JSON limit (64 KiB) under MAX_BODY_BYTES (256 KiB): bodies of
    # 256 KiB are refused unread and cost nothing; the worst case is what passes that limit.
    # Nested empty lists shrink further: the service reads them and refuses (413) any body
    # with more lists than a full batch holds, so the worst case is the largest it parses.
    settings = {
        **QUICK,
        "service_env": {**QUICK["service_env"], "TEST_APP_JSON_LIMIT_BYTES": str(64 * 1024)},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    completed = gate(serving_wrapped_app(workspace, tmp_path))
    assert completed.returncode == 0, completed.stderr
    kinds = read_json(workspace.report_path("gate"))["figures"]["worst_case"]["requests"]
    numbers, empty_lists = (
        kinds[f"JSON {name}, largest body"] for name in ("numbers", "empty lists")
    )
    assert 32 * 1024 < numbers["body_bytes"] <= 64 * 1024
    assert empty_lists["body_bytes"] <= 64 * 1024
    for kind in (numbers, empty_lists):
        assert "413" not in kind["answers"], kind
    assert kinds["float32, largest body"]["body_bytes"] > 200 * 1024, "float32 has no such limit"


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


def test_without_an_enforcing_cgroup_the_gate_says_so_and_can_require_it(
    checked_workspace, tmp_path
):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=QUICK)
    completed = gate(workspace, MEMORY_CGROUP_BACKEND="none")
    assert "NOT enforced" in completed.stderr
    reason = failure_line(completed)
    assert "the memory limit was not enforced by the kernel (gate.require_enforced is on)" in reason
    assert "the cpu limit was not enforced by the kernel" in reason
    relaxed = workspace_like(
        checked_workspace, tmp_path / "relaxed", gate={**QUICK, "require_enforced": False}
    )
    completed = gate(relaxed, MEMORY_CGROUP_BACKEND="none")
    assert completed.returncode == 0, completed.stderr
    report = read_json(relaxed.report_path("gate"))
    assert report["limits"]["memory"]["enforced"] is False
    assert report["limits"]["cpu"]["enforced"] is False
    assert report["figures"]["peak_memory_mb"] > 20


def test_a_plan_not_in_the_table_is_named_with_the_plans_there_are(checked_workspace, tmp_path):
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate={**QUICK, "plan": "gold"})
    reason = failure_line(gate(workspace))
    assert "gate.plan='gold' is not in gate.plans; use one of free, starter, roomy" in reason


def passed_gate(workspace) -> dict:
    """The gate's judged timings and per-request costs for `workspace`, which must pass."""
    completed = gate(workspace)
    assert completed.returncode == 0, completed.stderr
    report = read_json(workspace.report_path("gate"))
    costs = {k: v for k, v in report["figures"]["cost"].items() if k.startswith("cpu_ms")}
    print(workspace.root.name, costs, report["figures"]["latency_p99_ms_by_window"])
    return {name: report["measures"][name]["value"] for name in TIMINGS}


def beyond_the_bound(busy: dict, quiet: dict) -> dict:
    """The judged timings whose busy figure is not within MAX_RATIO of the quiet one's."""
    return {
        name: (busy[name], quiet[name])
        for name in TIMINGS
        if not 1 / MAX_RATIO <= busy[name] / quiet[name] <= MAX_RATIO
    }


@pytest.mark.quiet_host
def test_the_demo_gate_on_free_holds_with_two_busy_processes_beside_it(checked_workspace, tmp_path):
    # The same demo candidate, gated on free beside two busy processes and after them: it
    # passes both times and every judged timing stays within 30% of the quieter run's. (The
    # busy run is compared with a quieter run, not with its own cost measure: the judged
    # figures ARE the cost measure, so that comparison could not fail.)
    # Bodies of up to 4 MiB, not QUICK's 256 KiB: health is judged on the 99th percentile of
    # its probes, and the larger worst-case bodies keep the service busy long enough for a
    # steady share of some 900 probes to land while it is (at 256 KiB the percentile fell on
    # four probes, and moved by 1.3x between two runs).
    settings = {
        **FREE_QUICK,
        "cost_cold_starts": 3,
        "cost_max_cold_starts": 4,
        "cost_worst_case_rounds": 2,
        "cost_saturation_rounds": 3,  # in each service, as the demo's own gate
        # The demo's own per-request measure, the least of ten batches of 20 (QUICK's least
        # of two batches of 10 moved throughput 0.75x beside four busy processes).
        "cost_requests": 200,
        "cost_batch_requests": 20,
        "service_env": {"MAX_BODY_BYTES": str(4 << 20)},
    }

    def beside_and_after_two_busy_processes(trial: str) -> dict:
        with busy_processes(2):
            busy = passed_gate(
                workspace_like(checked_workspace, tmp_path / f"busy{trial}", gate=settings)
            )
        quiet = passed_gate(
            workspace_like(checked_workspace, tmp_path / f"quiet{trial}", gate=settings)
        )
        print({name: (busy[name], quiet[name]) for name in TIMINGS})
        return beyond_the_bound(busy, quiet)

    apart = beside_and_after_two_busy_processes("")
    if apart:
        # This VM's own speed drifts by up to 1.5x over minutes, into either run, and the
        # spinners cannot be told from that drift in one pair, so the pair is measured once
        # more (bounded); every run must pass the gate, and the second pair must hold.
        print("beyond 30%, measuring the pair again:", apart)
        apart = beside_and_after_two_busy_processes("-again")
    assert not apart, apart
