"""The gate's reasons in words, from what one run of the service showed."""

import pytest
from gate_helpers import gate_settings
from workspaces import make_workspace

from pipeline.gate.expected import expected_answers
from pipeline.gate.throttled import GroupMemory, Processes, ServiceRun, heartbeat_timeouts
from pipeline.gate.verdict import judge, reasons_in_words
from pipeline.gate.watch import GateFailure
from pipeline.params import load_params

SETTINGS = gate_settings()  # the free plan: 512 MB, a budget of 450 MB


def test_a_service_that_hit_its_limit_without_an_oom_kill_is_said_to_thrash():
    run = ServiceRun(
        memory=GroupMemory(failcnt=812, failcnt_before_worst_case=0),
        failure="the service was slow",
    )
    run.service_log_tail = ["worker booting", "POST /api/predict/ 200 9000ms", ""]
    reasons = reasons_in_words(run, SETTINGS)
    assert reasons[0].startswith("the service thrashed at the 512 MB limit: the group hit it 812")
    assert "no OOM" not in reasons[0] and "instead of killing anything" in reasons[0]
    assert reasons[1] == "the service was slow (service log: POST /api/predict/ 200 9000ms)"


def quota_run_after_load(log: str, tmp_path, workers_after: list[int]) -> ServiceRun:
    log_path = tmp_path / "service.log"
    log_path.write_text(log)
    processes = Processes(
        workers_before=[101],
        workers_after=workers_after,
        heartbeat_timeouts=heartbeat_timeouts(log_path),
    )
    return ServiceRun(processes=processes)


def test_a_worker_the_arbiter_killed_for_a_missed_heartbeat_under_the_quota_is_reported(tmp_path):
    # gunicorn's own line when a worker misses --timeout: a wall time under the quota, which
    # this host stretches; the figures keep it, the verdict judges what the CPU cost implies.
    run = quota_run_after_load(
        "[2026-11-29 17:11:18 +0000] [100] [CRITICAL] WORKER TIMEOUT (pid:101)\n",
        tmp_path,
        workers_after=[102],
    )
    assert run.processes.heartbeat_timeouts == [101]
    assert judge(run, SETTINGS, {})["workers_replaced"]["passed"]


def test_a_worker_that_died_any_other_way_fails_the_gate(tmp_path):
    run = quota_run_after_load(
        "[2026-11-29 17:11:18 +0000] [100] [ERROR] Worker (pid:101) was sent SIGKILL!\n",
        tmp_path,
        workers_after=[102],
    )
    assert run.processes.heartbeat_timeouts == []
    replaced = judge(run, SETTINGS, {})["workers_replaced"]
    assert not replaced["passed"] and replaced["value"] == 1


def test_a_gate_run_before_parity_is_refused_naming_the_file_and_the_stage(tmp_path):
    workspace = make_workspace(tmp_path / "ws")
    with pytest.raises(GateFailure) as refused:
        expected_answers(workspace, load_params(workspace).inputs, "0" * 64)
    assert str(refused.value) == (
        f"no parity predictions at {workspace.parity_predictions_path}; run `dvc repro parity`"
    )
