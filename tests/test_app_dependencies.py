"""What the service loads: never TensorFlow, scikit-learn or pickles, and it boots from a
clean venv of service/requirements.txt alone."""

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from app_helpers import FLOAT32

from pipeline.paths import REPO_ROOT

# pickle is not listed: numpy itself imports it (numpy._core._methods, for ndarray.dump);
# test_service_code_never_loads_pickles checks that no service code uses it.
FORBIDDEN_MODULES = (
    "tensorflow",
    "keras",
    "sklearn",
    "scipy",
    "joblib",
    "h5py",
    "yaml",
    "pipeline",
)
# A gunicorn config file, loaded through GUNICORN_CMD_ARGS so render.yaml's command stays as is:
# the master writes its modules once ready, the worker once it has answered a prediction.
MODULES_PROBE = """
import os
import sys


def _write(name):
    path = os.path.join(os.environ["MODULES_PROBE_DIR"], name)
    with open(path + ".partial", "w") as file:
        file.write("\\n".join(sorted(sys.modules)))
    os.replace(path + ".partial", path)


def when_ready(server):
    _write("master")


def post_request(worker, request, environ, response):
    if environ["PATH_INFO"].startswith("/api/predict"):
        _write("worker")
"""


def loaded_packages(path: Path, deadline_seconds: float = 10) -> set[str]:
    """Top-level packages in a probe's list, waiting for it: hooks run after the answer is sent."""
    started = time.monotonic()
    while not path.exists() and time.monotonic() - started < deadline_seconds:
        time.sleep(0.02)
    return {name.split(".")[0] for name in path.read_text().split()}


@pytest.mark.slow
def test_under_gunicorn_the_service_never_imports_tensorflow_or_sklearn(
    start_service, candidate_dir, samples, tmp_path
):
    (tmp_path / "probe.conf.py").write_text(MODULES_PROBE)
    service = start_service(
        candidate_dir,
        env={
            "GUNICORN_CMD_ARGS": f"--config={tmp_path / 'probe.conf.py'}",
            "MODULES_PROBE_DIR": str(tmp_path),
        },
    )
    predict = requests.post(
        f"{service.url}/api/predict/", data=samples[0].tobytes(), headers=FLOAT32, timeout=10
    )
    assert predict.status_code == 200
    worker, master = loaded_packages(tmp_path / "worker"), loaded_packages(tmp_path / "master")
    assert {"service", "ai_edge_litert", "numpy", "orjson"} <= worker
    assert worker.isdisjoint(FORBIDDEN_MODULES), worker & set(FORBIDDEN_MODULES)
    # No --preload: the master never loaded the app, so each worker built its interpreter.
    # (It does load service.worker, the worker class render.yaml names.)
    assert master.isdisjoint({"ai_edge_litert", "numpy", *FORBIDDEN_MODULES})
    master_modules = set((tmp_path / "master").read_text().split())
    assert "service.worker" in master_modules and "service.app" not in master_modules


def test_service_code_never_loads_pickles():
    # numpy itself imports the pickle module; what matters is that no service code unpickles.
    for path in (REPO_ROOT / "service").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"pickle", "joblib", "dill", "cloudpickle"}, path.name
        assert "allow_pickle=True" not in path.read_text(), path.name


@pytest.mark.slow
def test_the_service_boots_from_a_clean_venv_of_its_requirements_alone(
    candidate_dir, tmp_path, start_service, samples
):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "-r",
            str(REPO_ROOT / "service" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    service = start_service(candidate_dir, python_bin=venv / "bin")
    health = requests.get(f"{service.url}/api/health/", timeout=5)
    assert health.status_code == 200, health.text
    predict = requests.post(
        f"{service.url}/api/predict/", data=samples[0].tobytes(), headers=FLOAT32, timeout=10
    )
    assert predict.status_code == 200
    freeze = subprocess.run([str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True)
    assert "tensorflow" not in freeze.stdout and "scikit-learn" not in freeze.stdout
    assert json.loads(health.text)["runtime"] == "ai-edge-litert"
