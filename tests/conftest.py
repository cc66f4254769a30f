"""Shared fixtures: a small demo workspace built once per run by the real stages, and what
several test modules start from (held-out samples, the service's app, a release repository,
cgroup limits, the gate's groups, the release report's base, a reproduced fresh clone).

`make test` runs the suite on several pytest-xdist workers (TEST_WORKERS in the Makefile).
What a session fixture builds with TensorFlow or a gate run is built once for the whole run
(tests/shared_builds.py): by the first worker that needs it, in the run's shared temporary
folder; the other workers wait for it and read it. A test marked `quiet_host` runs while no
other test of the run does.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from cgroup_helpers import open_limits
from clones import reproduce
from gate_helpers import groups_before_the_test
from release_repos import make_release_repo
from report_helpers import report_base
from service_runner import RunningService
from shared_builds import built_once
from workspaces import deploy_on, make_workspace, run_stage, workspace_like

from pipeline.cgroups import existing_groups
from pipeline.paths import Workspace
from service.app import create_app
from service.predictor import Predictor


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a `quiet_host` test holds the run's host lock alone, setup to teardown;
    every other test shares it. The test that compares a gate beside two busy processes with
    one on a quiet host means the host's own load, not the suite's other workers (a
    TensorFlow training, a benchmark's servers) beside its "quiet" run. A waiting
    `quiet_host` test lets the others finish first (flock prefers no one), so it runs near
    the end of the run, on its own."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing else of the run is on the host
        yield
        return
    alone = item.get_closest_marker("quiet_host") is not None
    with open(Path(tempfile.gettempdir()) / f"pytest-{run}.host.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield


def _build_demo(folder: Path) -> None:
    workspace = make_workspace(folder)
    run_stage("pipeline.stages.demo_model", workspace)
    run_stage("pipeline.stages.convert", workspace)
    run_stage("pipeline.stages.parity", workspace)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Workspace:
    """A workspace whose demo model was trained, converted (quantization none) and checked
    for parity for real. Tests read it; a test that changes a workspace copies it first
    (workspaces.workspace_like)."""
    return Workspace(built_once(tmp_path_factory, "demo", _build_demo))


@pytest.fixture(scope="session")
def candidate_dir(demo_workspace) -> Path:
    """The demo candidate bundle (model.tflite + manifest.json)."""
    return demo_workspace.candidate_dir


@pytest.fixture(scope="session")
def checked_workspace(demo_workspace) -> Workspace:
    """The demo workspace with its real parity verdict: what the gate and promotion start from."""
    return demo_workspace


# A real gate run kept quick: two whole CPUs, few requests, a small body limit. Its verdict is
# what promote and smoke tests start from, so wall-clock thresholds that a busy machine flips
# are wide here; the gate's own tests hold them to params.yaml's figures.
QUICK_GATE = {
    "max_cold_start_seconds": 600,
    "max_health_latency_seconds": 600,
    "max_latency_p95_ms": 600_000,
    "max_latency_p99_ms": 600_000,
    "min_throughput_rps": 0,
    "plan": "roomy",
    "plans": {
        "roomy": {
            "memory_mb": 512,
            "cpu_share": 2.0,
            "price_usd_month": 99,
            "max_instances": 100,
            "max_peak_memory_mb": 450,
        }
    },
    "requests": 40,
    "concurrency": 4,
    "cold_start_deadline_seconds": 120,  # a bound on the gate's own run; a busy host stretches it
    "target_rps": 5,
    "service_env": {"MAX_BODY_BYTES": str(256 * 1024)},
}


@pytest.fixture(scope="session")
def gated_workspace(checked_workspace, tmp_path_factory) -> Workspace:
    """A copy of the checked workspace after a real gate run that passed: a real verdict, for
    the plan its render.yaml deploys (promote refuses any other)."""

    def build(folder: Path) -> None:
        workspace = workspace_like(checked_workspace, folder / "ws", gate=QUICK_GATE)
        deploy_on(workspace, "roomy", QUICK_GATE["plans"]["roomy"]["cpu_share"])
        completed = run_stage("pipeline.stages.gate", workspace, check=False)
        assert completed.returncode == 0, completed.stderr[-2000:]

    return Workspace(built_once(tmp_path_factory, "gated", build) / "ws")


# The quick gate on Render's starter plan (its CPU share), run while render.yaml still deploys
# free: what `dvc exp run -S gate.plan=starter` gives before anyone edits render.yaml.
STARTER_GATE = {
    **QUICK_GATE,
    "plan": "starter",
    "plans": {
        "starter": {
            "memory_mb": 512,
            "cpu_share": 0.5,
            "price_usd_month": 7,
            "max_instances": 100,
            "max_peak_memory_mb": 450,
        }
    },
}


@pytest.fixture(scope="session")
def starter_gated_workspace(checked_workspace, tmp_path_factory) -> Workspace:
    """A copy of the checked workspace after a real gate run that passed on the starter plan,
    its render.yaml the repository's (plan free, CPU_SHARE 0.1)."""

    def build(folder: Path) -> None:
        workspace = workspace_like(checked_workspace, folder / "ws", gate=STARTER_GATE)
        completed = run_stage("pipeline.stages.gate", workspace, check=False)
        assert completed.returncode == 0, completed.stderr[-2000:]

    return Workspace(built_once(tmp_path_factory, "starter-gated", build) / "ws")


@pytest.fixture(scope="session")
def release_templates(checked_workspace, gated_workspace, tmp_path_factory) -> Path:
    """A DVC project with a gated candidate and its bare remote, ready to promote (promote/),
    and one with model-v1 and model-v2 released (rollback/): each test copies one
    (tests/kill_trials.py). Made once: every one of them needs promote's full runs."""
    from kill_trials import prepare

    def build(folder: Path) -> None:
        prepare(checked_workspace, gated_workspace, folder)

    return built_once(tmp_path_factory, "release-templates", build)


@pytest.fixture(scope="session")
def drifted_candidate_dir(candidate_dir, tmp_path_factory) -> Path:
    """The demo candidate with noise of its weights' size added (tests/drifted_model.py): the
    same shape, labels and source model, other answers. Made once: it needs TensorFlow."""

    def build(folder: Path) -> None:
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("drifted_model.py")),
                str(candidate_dir),
                str(folder / "candidate"),
                "--noise=1.0",
            ],
            capture_output=True,
            check=True,
        )

    return built_once(tmp_path_factory, "drifted", build) / "candidate"


@pytest.fixture
def start_service():
    """Start real services on demand; every one is stopped after the test."""
    services = []

    def start(model_dir: Path, **kwargs) -> RunningService:
        service = RunningService(model_dir, **kwargs)
        services.append(service)
        service.wait_until_answering()
        return service

    yield start
    for service in services:
        service.stop()


@pytest.fixture(scope="module")
def demo_service(candidate_dir):
    """One real gunicorn serving the demo candidate, shared by a test module."""
    service = RunningService(candidate_dir)
    try:
        service.wait_until_answering()
        yield service
    finally:  # also when it never answered: no gunicorn left behind
        service.stop()


@pytest.fixture(scope="session")
def heldout_samples(demo_workspace) -> np.ndarray:
    """The demo's held-out inputs (60 in the tests' demo), raw float32, read-only."""
    with np.load(demo_workspace.demo_dir / "heldout.npz") as heldout:
        samples = heldout["X"].astype("<f4")
    samples.flags.writeable = False  # shared by every test of the session: a test copies
    return samples


@pytest.fixture(scope="session")
def samples(heldout_samples) -> np.ndarray:
    """The first 16 held-out samples: a batch of requests, read-only."""
    return heldout_samples[:16]


@pytest.fixture(scope="session")
def sample(heldout_samples) -> np.ndarray:
    """The first held-out sample, read-only."""
    return heldout_samples[0]


@pytest.fixture(scope="module")
def predictor(candidate_dir) -> Predictor:
    """The demo candidate on the lite runtime in this process: what a served answer equals."""
    return Predictor(candidate_dir)


@pytest.fixture(scope="module")
def app_settings() -> dict:
    """create_app's keyword arguments for `app`; a module that needs others overrides this."""
    return {}


@pytest.fixture(scope="module")
def app(candidate_dir, app_settings):
    """The service's WSGI app on the demo candidate, built by its factory in this process."""
    return create_app(candidate_dir, **app_settings)


@pytest.fixture
def release_repo(checked_workspace, gated_workspace, tmp_path):
    """A git repository with a bare remote and a real candidate that passed every gate."""
    return make_release_repo(checked_workspace, gated_workspace, tmp_path)


@pytest.fixture
def cgroup_marker() -> str:
    """A word unique to the test, in its group names and its children's command lines."""
    return f"memtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cgroup_limit(cgroup_marker, monkeypatch):
    """resource_limit() with a short grace; no group or child of the test may outlive it."""
    yield from open_limits(cgroup_marker, monkeypatch)


@pytest.fixture
def gate_groups_before():
    """The gate groups that exist before a test: another gate's, never this test's to answer for."""
    groups_before_the_test.clear()
    groups_before_the_test.update(existing_groups("gate"))
    yield
    groups_before_the_test.clear()


@pytest.fixture
def report_workspace(tmp_path) -> Workspace:
    """A git repository with a candidate on disk and main's reports committed (the base)."""
    return report_base(tmp_path / "repo")


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory) -> Path:
    """A fresh clone of this repository after one full `dvc repro`, made once per run: read it,
    or take `reproduced_copy` to run dvc or git in it."""
    return built_once(tmp_path_factory, "reproduced", reproduce) / "repo"


@pytest.fixture
def reproduced_copy(reproduced, tmp_path) -> Path:
    """A copy of the reproduced clone for one test, which dvc and git may change."""
    copy = tmp_path / "repo"
    shutil.copytree(reproduced, copy, symlinks=True)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)
