"""The gate, for real: render.yaml's command under a plan's memory and CPU limits, real requests.

Services built to fail (slow to start, thrashing on page cache, unable to answer health while
busy) are the real service wrapped by a small WSGI module, started by a render.yaml of the
test's own. Every assertion is on what a user of the gate sees: exit status, the one-line
reason, reports/gate.json, and nothing left behind.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from conftest import workspace_like

from pipeline.cgroups import evict_from_page_cache, existing_groups
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.verdicts import read_json
from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def plan(memory_mb: int, cpu_share: float, price: int, max_instances: int = 100) -> dict:
    """A row of gate.plans, with the gate's 450 MB budget of a 512 MB plan."""
    return {
        "memory_mb": memory_mb,
        "cpu_share": cpu_share,
        "price_usd_month": price,
        "max_instances": max_instances,
        "max_peak_memory_mb": 450,
    }


PLANS = {
    "free": plan(512, 0.1, 0, max_instances=1),
    "starter": plan(512, 0.5, 7),
    "roomy": plan(512, 2.0, 99),  # two whole CPUs keep the tests that are not about CPU quick
}
# Few requests, and a body limit small enough that the worst-case mix is cheap to parse.
QUICK = {
    "plan": "roomy",
    "plans": PLANS,
    "requests": 40,
    "concurrency": 4,
    "cold_start_deadline_seconds": 30,
    "target_rps": 5,
    "service_env": {"MAX_BODY_BYTES": str(256 * 1024)},
    # The CPU cost, measured unthrottled: fewer starts, requests and worst-case rounds.
    "cost_cold_starts": 1,
    "cost_max_cold_starts": 2,
    "cost_requests": 20,
    "cost_batch_requests": 10,
    "cost_health_requests": 5,
    "cost_worst_case_rounds": 1,
    "max_phase_repeats": 0,
}
BUSY_LOOP = "while True: pass"

# The real service, made slow or greedy on purpose by environment variables.
WRAPPED_APP = """
import os, threading, time
from service.app import _app_from_environment

end = time.process_time() + float(os.environ.get("TEST_APP_BURN_CPU_SECONDS", "0"))
while time.process_time() < end:  # CPU work at import: a cold start the quota stretches
    pass
real = _app_from_environment()
serial_seconds = float(os.environ.get("TEST_APP_SERIAL_SECONDS", "0"))
read_path = os.environ.get("TEST_APP_READ_FILE")
json_limit = int(os.environ.get("TEST_APP_JSON_LIMIT_BYTES", "0"))
one_at_a_time = threading.Lock()

def app(environ, start_response):
    is_json = environ.get("CONTENT_TYPE", "").startswith("application/json")
    if json_limit and is_json and int(environ.get("CONTENT_LENGTH") or 0) > json_limit:
        start_response("413 Payload Too Large", [("Content-Type", "application/json")])
        return [b'{"error": "JSON body too large", "expected": "a smaller one"}']
    if read_path and environ.get("CONTENT_TYPE", "").startswith("application/json"):
        with open(read_path, "rb") as cached:  # page cache the kernel can reclaim, not kill for
            while cached.read(1 << 20):
                pass
    if serial_seconds:  # every request, health included, queues behind a slow prediction
        with one_at_a_time:
            if environ["PATH_INFO"].startswith("/api/predict"):
                time.sleep(serial_seconds)
            return real(environ, start_response)
    return real(environ, start_response)
"""


# The groups the gate makes (pipeline/gate/run.py, gate_preflight.py): other programs on a
# shared machine may make groups whose names merely start with "gate-".
GATE_GROUP_NAME = re.compile(r"gate-(baseline-)?[0-9a-f]{10}")
groups_before_the_test: set = set()


@pytest.fixture(autouse=True)
def gate_groups_before():
    """The gate groups that exist before a test: another gate's, never this test's to answer for."""
    groups_before_the_test.clear()
    groups_before_the_test.update(existing_groups("gate"))


def leftovers(workspace) -> tuple[list, list[int]]:
    """Gate groups and service processes still present after a run: both must be empty."""
    serving = []
    for process in psutil.process_iter(["pid", "environ"]):
        environ = process.info.get("environ") or {}
        if environ.get("MODEL_DIR") == str(workspace.candidate_dir):
            serving.append(process.info["pid"])
    groups = [
        group
        for group in existing_groups("gate")
        if GATE_GROUP_NAME.fullmatch(group.name) and group not in groups_before_the_test
    ]
    return groups, serving


def gate(workspace, **env):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.stages.gate"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it, even where pytest inherited it ignored
    (started in the background by a script), so Ctrl-C reaches the gate as a user's would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gate_under_load(workspace) -> subprocess.Popen:
    """A gate running in the background, returned once its load has begun."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.stages.gate"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    for line in process.stdout:  # progress lines mean the load has begun
        if line.startswith("gate load:"):
            break
    return process


def failure_line(completed) -> str:
    assert completed.returncode != 0, completed.stdout
    return completed.stderr.strip().splitlines()[-1]


def serving_wrapped_app(workspace, tmp_path):
    """Point the workspace's render.yaml at the wrapped service (same gunicorn flags)."""
    (tmp_path / "app_dir").mkdir()
    (tmp_path / "app_dir" / "wrapped_app.py").write_text(WRAPPED_APP)
    blueprint = yaml.safe_load(workspace.render_yaml_path.read_text())
    web = blueprint["services"][0]
    web["startCommand"] = web["startCommand"].replace(
        "service.app:app", f"--pythonpath {tmp_path / 'app_dir'} wrapped_app:app"
    )
    workspace.render_yaml_path.write_text(yaml.safe_dump(blueprint))
    return workspace


@pytest.fixture
def two_busy_processes():
    """Two processes spinning on the CPU beside the test, as on a shared CI runner."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2)]
    yield spinners
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


# With QUICK's 256 KiB body limit all eight worst-case float32 batches are admitted at once,
# and at 0.1 CPU a health check waits behind them: about 0.27 CPU-s, 2.7 s (measured). Tests
# that are not about health allow 4 s; health under saturation has its own test.
FREE_QUICK = {**QUICK, "plan": "free", "max_health_latency_seconds": 4.0}


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


def test_the_worst_case_is_the_largest_body_the_service_takes_in_not_one_it_refuses(
    checked_workspace, tmp_path
):
    # A service with its own JSON limit (64 KiB) under MAX_BODY_BYTES (256 KiB): bodies of
    # 256 KiB are refused unread and cost nothing; the worst case is what passes that limit.
    settings = {
        **QUICK,
        "service_env": {**QUICK["service_env"], "TEST_APP_JSON_LIMIT_BYTES": str(64 * 1024)},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    completed = gate(serving_wrapped_app(workspace, tmp_path))
    assert completed.returncode == 0, completed.stderr
    kinds = read_json(workspace.report_path("gate"))["figures"]["worst_case"]["requests"]
    for name in ("JSON numbers, largest body", "JSON empty lists, largest body"):
        assert 32 * 1024 < kinds[name]["body_bytes"] <= 64 * 1024, name
        assert "413" not in kinds[name]["answers"], name
    assert kinds["float32, largest body"]["body_bytes"] > 200 * 1024, "float32 has no such limit"


def test_a_bundle_larger_than_the_budget_is_refused_before_the_service_starts(
    checked_workspace, tmp_path
):
    plans = {"tiny": {**PLANS["roomy"], "memory_mb": 64, "max_peak_memory_mb": 10}}
    settings = {**QUICK, "plan": "tiny", "plans": plans}
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    completed = gate(workspace)
    reason = failure_line(completed)
    assert "the model bundle (1.0 MB) plus the lite runtime's measured baseline" in reason
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
        "service_env": {**QUICK["service_env"], "TEST_APP_SERIAL_SECONDS": "0.3"},
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", gate=settings)
    reason = failure_line(gate(serving_wrapped_app(workspace, tmp_path)))
    assert "health_latency_saturated_seconds" in reason and "(needs <= 0.5)" in reason
    report = read_json(workspace.report_path("gate"))
    assert report["measures"]["health_latency_saturated_seconds"]["value"] > 0.5
    assert report["measures"]["wrong_answers"]["value"] == 0
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


def test_the_demo_gate_on_free_holds_with_two_busy_processes_beside_it(
    checked_workspace, tmp_path, two_busy_processes
):
    # The same demo candidate, gated on free beside two busy processes and after them: it
    # passes both times and every judged timing stays within 30% of the quieter run's. (The
    # busy run is compared with a quieter run, not with its own cost measure: the judged
    # figures ARE the cost measure, so that comparison could not fail.) Health under
    # saturation must pass but is not compared: with QUICK's small bodies the worst-case
    # float32 batches it waits behind cost 0.13 to 0.30 CPU-s from one run to the next on
    # the same host, busy or not (measured); the demo's own settings are compared by
    # `make gate-steadiness`.
    settings = {
        **FREE_QUICK,
        "cost_cold_starts": 3,
        "cost_max_cold_starts": 4,
        "cost_worst_case_rounds": 2,
    }
    busy_ws = workspace_like(checked_workspace, tmp_path / "busy", gate=settings)
    busy = gate(busy_ws)
    assert busy.returncode == 0, busy.stderr
    for spinner in two_busy_processes:
        spinner.kill()
        spinner.wait()
    quiet_ws = workspace_like(checked_workspace, tmp_path / "quiet", gate=settings)
    quiet = gate(quiet_ws)
    assert quiet.returncode == 0, quiet.stderr
    busy_measures = read_json(busy_ws.report_path("gate"))["measures"]
    quiet_measures = read_json(quiet_ws.report_path("gate"))["measures"]
    assert busy_measures["health_latency_saturated_seconds"]["passed"]
    for name in (
        "cold_start_seconds",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_rps",
        "sustainable_rps",
    ):
        ratio = busy_measures[name]["value"] / quiet_measures[name]["value"]
        assert 1 / 1.3 <= ratio <= 1.3, (name, busy_measures[name], quiet_measures[name])
