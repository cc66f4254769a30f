"""Helpers for the gate's tests: plans, quick gate settings, the real service wrapped to
fail on purpose, a gate run and what it leaves behind."""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from pipeline.cgroups import existing_groups
from pipeline.params import GateParams, load_params
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace


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
    "cold_start_deadline_seconds": 120,  # a bound on the gate's own run; a busy host stretches it
    "target_rps": 5,
    "service_env": {"MAX_BODY_BYTES": str(256 * 1024)},
    # The CPU cost, measured unthrottled: fewer starts, requests and rounds.
    "cost_cold_starts": 1,
    "cost_max_cold_starts": 2,
    "cost_requests": 20,
    "cost_batch_requests": 10,
    "cost_health_requests": 5,
    "cost_saturation_requests": 100,
    "cost_saturation_rounds": 1,
    "cost_worst_case_rounds": 1,
    "max_phase_repeats": 0,
}

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
health_503_while_busy = os.environ.get("TEST_APP_HEALTH_503_WHILE_BUSY") == "1"
one_at_a_time = threading.Lock()
predicting = []

def app(environ, start_response):
    if health_503_while_busy and environ["PATH_INFO"] == "/api/health/" and predicting:
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [b'{"status": "busy"}']
    if health_503_while_busy and environ["PATH_INFO"].startswith("/api/predict"):
        predicting.append(1)
        try:
            return real(environ, start_response)
        finally:
            predicting.pop()
    is_json = environ.get("CONTENT_TYPE", "").startswith("application/json")
    if json_limit and is_json and int(environ.get("CONTENT_LENGTH") or 0) > json_limit:
        start_response("413 Payload Too Large", [("Content-Type", "application/json")])
        return [b'{"error": "JSON body too large", "expected": "a smaller one"}']
    if read_path and environ.get("CONTENT_TYPE", "").startswith("application/json"):
        with open(read_path, "rb") as cached:  # page cache the kernel can reclaim, not kill for
            while cached.read(1 << 20):
                pass
            # Read afresh by every request, so each run of the service (the gate's unthrottled
            # cost run, then its throttled one) fills its own group, not the first reader's.
            os.posix_fadvise(cached.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if serial_seconds:  # every request, health included, queues behind a slow prediction
        with one_at_a_time:
            # float32 ones: the gate's loads send those; its JSON worst cases would only
            # repeat the wait burst after burst while it shrinks a refused body.
            if environ["PATH_INFO"].startswith("/api/predict") and not is_json:
                time.sleep(serial_seconds)
            return real(environ, start_response)
    return real(environ, start_response)
"""


def gate_settings(cpu_share: float | None = None, **changes) -> GateParams:
    """params.yaml's gate section with `changes`, and its plan's CPU share set to `cpu_share`."""
    settings = dataclasses.replace(load_params(Workspace(REPO_ROOT)).gate, **changes)
    if cpu_share is None:
        return settings
    plan = dataclasses.replace(settings.target_plan, cpu_share=cpu_share)
    return dataclasses.replace(settings, plans={**settings.plans, settings.plan: plan})


# The groups the gate makes (pipeline/gate/throttled.py, cost.py, preflight.py): other programs on a
# shared machine may make groups whose names merely start with "gate-".
GATE_GROUP_NAME = re.compile(r"gate-(cost-|baseline-)?[0-9a-f]{10}")
groups_before_the_test: set = set()
# A group being set up or torn down is empty for milliseconds; one left behind stays empty.
EMPTY_GROUP_RECHECK_SECONDS = 2.0


def _serves(pid: int, workspace) -> bool:
    try:
        return psutil.Process(pid).environ().get("MODEL_DIR") == str(workspace.candidate_dir)
    except psutil.Error:
        return False


def _group_pids(group: Path) -> list[int] | None:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return None  # removed meanwhile


def leftovers(workspace) -> tuple[list, list[int]]:
    """Gate groups and service processes this workspace's gate left: both must be empty.

    The suite runs in parallel, so other tests' gates make groups of their own meanwhile. A
    group new since the test began is this gate's when a process in it serves this
    workspace's candidate, or when it holds no process at all and still exists a moment
    later (another gate's group is empty only while it is set up or torn down).
    """
    serving = []
    for process in psutil.process_iter(["pid", "environ"]):
        environ = process.info.get("environ") or {}
        if environ.get("MODEL_DIR") == str(workspace.candidate_dir):
            serving.append(process.info["pid"])
    new = [
        group
        for group in existing_groups("gate")
        if GATE_GROUP_NAME.fullmatch(group.name) and group not in groups_before_the_test
    ]
    groups, empty = [], []
    for group in new:
        pids = _group_pids(group)
        if pids == []:
            empty.append(group)
        elif pids and any(_serves(pid, workspace) for pid in pids):
            groups.append(group)
    if empty:
        time.sleep(EMPTY_GROUP_RECHECK_SECONDS)
        groups += [group for group in empty if _group_pids(group) == []]
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


def gate_under_load(workspace, load: str = "gate load") -> subprocess.Popen:
    """A gate running in the background, returned once `load` has begun (the throttled run's
    load by default; "cost: load unthrottled" is the cost phase's)."""
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
        if line.startswith(f"{load}:"):
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


FREE_QUICK = {**QUICK, "plan": "free"}
