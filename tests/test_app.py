"""The service, for real: render.yaml's gunicorn on loopback, exercised with requests."""

import ast
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from pipeline.paths import REPO_ROOT
from service.predictor import Predictor

pytestmark = pytest.mark.slow
FLOAT32 = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def samples(demo_workspace) -> np.ndarray:
    """Raw held-out samples of the demo."""
    with np.load(demo_workspace.demo_dir / "heldout.npz") as heldout:
        return heldout["X"][:16].astype(np.float32)


@pytest.fixture(scope="module")
def reference(candidate_dir) -> Predictor:
    """The predictor in this process: what every HTTP answer must equal."""
    return Predictor(candidate_dir)


def worker_pid(service) -> int:
    return requests.get(f"{service.url}/api/health/", timeout=5).json()["worker_pid"]


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] and "expected" in body and "Traceback" not in response.text
    return body["error"]


def test_health_reports_the_model_runtime_and_memory(demo_service, reference):
    for path in ("/api/health/", "/api/health"):
        response = requests.get(demo_service.url + path, allow_redirects=False, timeout=5)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["predictor"] == "ready"
        assert body["model_sha256"] == reference.sha256
        assert body["model_version"] == reference.manifest["version"]
        assert body["runtime"] == "ai-edge-litert" and body["runtime_version"] == "2.3.0"
        assert body["uptime_seconds"] >= 0 and 10 < body["worker_memory_mb"] < 512


def test_predict_json_one_sequence(demo_service, reference, samples):
    response = requests.post(
        f"{demo_service.url}/api/predict/", json={"instances": samples[0].tolist()}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_sha256"] == reference.sha256
    expected = reference.predict(samples[:1], top_k=3)[0]
    assert body["predictions"][0]["label"] == expected["label"]
    assert [entry["label"] for entry in body["predictions"][0]["top_k"]] == [
        entry["label"] for entry in expected["top_k"]
    ]
    assert body["predictions"][0]["probability"] == pytest.approx(expected["probability"], abs=1e-6)


def test_predict_float32_batch_with_top_k(demo_service, reference, samples):
    response = requests.post(
        f"{demo_service.url}/api/predict/?top_k=5",
        data=samples[:4].astype("<f4").tobytes(),
        headers=FLOAT32,
        timeout=10,
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 4 and all(len(p["top_k"]) == 5 for p in predictions)
    assert [p["label"] for p in predictions] == [p["label"] for p in reference.predict(samples[:4])]


def test_predict_json_batch_equals_float32_batch(demo_service, samples):
    as_json = requests.post(
        f"{demo_service.url}/api/predict", json={"instances": samples[:3].tolist()}, timeout=10
    ).json()
    as_bytes = requests.post(
        f"{demo_service.url}/api/predict", data=samples[:3].tobytes(), headers=FLOAT32, timeout=10
    ).json()
    assert as_json["predictions"] == as_bytes["predictions"]


def test_metadata_describes_the_contract(demo_service, reference):
    body = requests.get(f"{demo_service.url}/api/metadata/", timeout=5).json()
    assert body["input"]["shape"] == [65, 243]
    assert body["labels"] == list(reference.contract.labels)
    assert body["model_sha256"] == reference.sha256 and body["quantization"] == "none"
    assert body["preprocessing"] == "affine"
    assert "verdicts" in body


BAD_REQUESTS = [
    ("wrong shape", dict(json={"instances": [[1.0, 2.0]]}), 400, "shape [1, 2]"),
    ("non-numeric", dict(json={"instances": [["a"] * 243] * 65}), 400, "not numbers"),
    ("booleans", dict(json={"instances": [[True] * 243] * 65}), 400, "not numbers"),
    ("ragged", dict(json={"instances": [[1.0] * 243, [1.0]]}), 400, "ragged"),
    ("no instances", dict(json={"data": []}), 400, "no 'instances' key"),
    (
        "invalid JSON",
        dict(data=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "invalid JSON",
    ),
    (
        "NaN literal",
        dict(data=b'{"instances": [NaN]}', headers={"Content-Type": "application/json"}),
        400,
        "invalid JSON",
    ),
    ("empty body", dict(data=b"", headers={"Content-Type": "application/json"}), 400, "empty"),
    (
        "wrong content type",
        dict(data=b"1,2,3", headers={"Content-Type": "text/csv"}),
        415,
        "'text/csv' is not supported",
    ),
    ("partial float32 sample", dict(data=b"\x00" * 100, headers=FLOAT32), 400, "not whole samples"),
    (
        "too many samples",
        dict(data=np.zeros((65, 65, 243), "<f4").tobytes(), headers=FLOAT32),
        413,
        "65 samples",
    ),
    ("top_k zero", dict(params={"top_k": "0"}, json={"instances": []}), 400, "top_k='0'"),
    ("top_k too large", dict(params={"top_k": "11"}, json={"instances": []}), 400, "top_k='11'"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_json_error_and_the_worker_survives(demo_service, case):
    _, kwargs, status, words = case
    before = worker_pid(demo_service)
    error = error_of(
        requests.post(f"{demo_service.url}/api/predict/", timeout=10, **kwargs), status
    )
    assert words in error
    assert worker_pid(demo_service) == before


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_float32_values_are_refused(demo_service, samples, value):
    sample = samples[:1].copy()
    sample[0, 10, 20] = value
    error = error_of(
        requests.post(
            f"{demo_service.url}/api/predict/", data=sample.tobytes(), headers=FLOAT32, timeout=10
        ),
        400,
    )
    assert "NaN or infinity" in error


def test_a_body_over_the_limit_is_refused_before_it_is_read(start_service, candidate_dir):
    service = start_service(candidate_dir, env={"MAX_BODY_BYTES": "100000"})
    declared = error_of(
        requests.post(
            f"{service.url}/api/predict/", data=b"\x00" * 200_000, headers=FLOAT32, timeout=10
        ),
        413,
    )
    assert "200000 bytes is too large" in declared

    def chunks():
        for _ in range(20):
            yield b"\x00" * 10_000

    chunked = error_of(
        requests.post(f"{service.url}/api/predict/", data=chunks(), headers=FLOAT32, timeout=10),
        413,
    )
    assert "too large" in chunked
    assert requests.get(f"{service.url}/api/health/", timeout=5).status_code == 200


def test_unknown_paths_and_wrong_methods(demo_service):
    assert "no such path" in error_of(requests.get(f"{demo_service.url}/nowhere", timeout=5), 404)
    response = requests.delete(f"{demo_service.url}/api/predict/", timeout=5)
    error_of(response, 405)
    assert response.headers["Allow"] == "POST"
    response = requests.post(f"{demo_service.url}/api/health/", timeout=5)
    error_of(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


def test_one_access_log_line_per_request_with_status_and_time(demo_service):
    requests.get(f"{demo_service.url}/api/log-probe-7f3a", timeout=5)
    lines = [line for line in demo_service.log_text().splitlines() if "log-probe-7f3a" in line]
    assert len(lines) == 1
    assert " GET /api/log-probe-7f3a 404 " in lines[0] and lines[0].endswith("ms")


def test_a_concurrent_burst_gets_every_answer_right(demo_service, reference, samples):
    expected = [answer["label"] for answer in reference.predict(samples)]
    wrong, lock = [], threading.Lock()

    def client(thread_index: int) -> None:
        with requests.Session() as session:
            for request_index in range(50):
                index = (thread_index * 50 + request_index) % len(samples)
                response = session.post(
                    f"{demo_service.url}/api/predict/",
                    data=samples[index].tobytes(),
                    headers=FLOAT32,
                    timeout=30,
                )
                label = response.json()["predictions"][0]["label"] if response.ok else None
                if label != expected[index]:
                    with lock:
                        wrong.append((index, response.status_code, label))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert wrong == []


def bundle_copy(candidate_dir: Path, destination: Path) -> Path:
    shutil.copytree(candidate_dir, destination)
    return destination


def test_a_missing_bundle_answers_503_with_the_reason(start_service, tmp_path):
    service = start_service(tmp_path / "empty")
    response = requests.get(f"{service.url}/api/health/", timeout=5)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["predictor"] == "not ready"
    assert "manifest.json is missing" in body["reason"]
    predict = requests.post(f"{service.url}/api/predict/", json={"instances": [1]}, timeout=5)
    assert "predictor not ready" in error_of(predict, 503)


def test_an_lfs_pointer_is_named_in_words(start_service, candidate_dir, tmp_path):
    bundle = bundle_copy(candidate_dir, tmp_path / "bundle")
    (bundle / "model.tflite").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 1030416\n"
    )
    service = start_service(bundle)
    body = requests.get(f"{service.url}/api/health/", timeout=5).json()
    assert body["reason"] == (
        "model.tflite is a Git LFS pointer; the LFS object was not fetched "
        "at build time (run `git lfs pull` in the build command)"
    )


def test_a_corrupt_model_answers_503(start_service, candidate_dir, tmp_path):
    bundle = bundle_copy(candidate_dir, tmp_path / "bundle")
    (bundle / "model.tflite").write_bytes(b"garbage" * 100)
    service = start_service(bundle)
    response = requests.get(f"{service.url}/api/health/", timeout=5)
    assert response.status_code == 503 and "sha256" in response.json()["reason"]


FORBIDDEN_MODULES = ("tensorflow", "keras", "sklearn", "joblib", "yaml", "pipeline")


def test_the_service_never_imports_tensorflow_sklearn_or_joblib(candidate_dir):
    probe = (
        "import sys, io\n"
        "import service.app as module\n"
        "app = module.app\n"
        "environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/api/health/',\n"
        "           'wsgi.input': io.BytesIO()}\n"
        "statuses = []\n"
        "app(environ, lambda status, headers: statuses.append(status))\n"
        "print(statuses[0])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"MODEL_DIR": str(candidate_dir), "PATH": "/usr/bin"},
    )
    status, modules = completed.stdout.splitlines()[:2]
    assert status == "200 OK", completed.stderr
    loaded = {name.split(".")[0] for name in modules.split()}
    assert loaded.isdisjoint(FORBIDDEN_MODULES), loaded & set(FORBIDDEN_MODULES)


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
