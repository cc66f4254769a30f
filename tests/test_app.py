"""The service: its factory in-process, and render.yaml's gunicorn on loopback with requests."""

import ast
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests

import service.app as service_app
from pipeline.paths import REPO_ROOT
from service.app import create_app
from service.predictor import Predictor

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


def call(app, method: str, path: str, body: bytes = b"", **environ) -> tuple[int, dict, dict]:
    """One request through the WSGI callable: status, headers and JSON body."""
    statuses, headers = [], {}

    def start_response(status, response_headers):
        statuses.append(status)
        headers.update(response_headers)

    payload = b"".join(
        app(
            {
                "REQUEST_METHOD": method,
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "wsgi.input": io.BytesIO(body),
                **environ,
            },
            start_response,
        )
    )
    return int(statuses[0].split()[0]), headers, json.loads(payload) if payload else {}


def fake_bundle(bundle_dir: Path, model_bytes: bytes, **manifest_overrides) -> Path:
    """A bundle whose model.tflite is `model_bytes`, with a manifest naming its sha256."""
    bundle_dir.mkdir(parents=True)
    (bundle_dir / "model.tflite").write_bytes(model_bytes)
    manifest = {
        "schema": 1,
        "version": "fake",
        "model_file": "model.tflite",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "input": {"shape": [65, 243], "dtype": "float32"},
        "labels": ["a", "b"],
        "preprocessing": {"kind": "identity"},
        **manifest_overrides,
    }
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    return bundle_dir


def assert_not_ready(app, reason_words: str) -> None:
    status, _, health = call(app, "GET", "/api/health/")
    assert status == 503 and health["predictor"] == "not ready", health
    assert reason_words in health["reason"]
    status, _, refusal = call(
        app, "POST", "/api/predict/", b"{}", CONTENT_TYPE="application/json", CONTENT_LENGTH="2"
    )
    assert status == 503 and reason_words in refusal["error"]
    assert call(app, "GET", "/api/metadata/")[0] == 503


def test_a_model_the_runtime_cannot_read_answers_503(tmp_path):
    app = create_app(fake_bundle(tmp_path / "bundle", b"not a flatbuffer" * 8))
    assert_not_ready(app, "cannot be loaded by ai-edge-litert")


def test_a_manifest_of_the_wrong_shape_still_boots_and_answers_503(tmp_path):
    bundle = fake_bundle(tmp_path / "bundle", b"x", input={"shape": ["sixty-five"]})
    assert_not_ready(create_app(bundle), "input shape ['sixty-five'] is not a list of positive")


def test_routing_needs_no_model(tmp_path):
    app = create_app(tmp_path / "nothing-here")
    status, headers, body = call(app, "PUT", "/api/metadata")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and body["expected"]
    status, _, body = call(app, "GET", "/api/predict/extra")
    assert status == 404 and "/api/predict/" in body["expected"]


@pytest.mark.slow
def test_a_default_top_k_above_the_label_count_lists_every_label(candidate_dir, samples):
    app = create_app(candidate_dir, default_top_k=50)
    body = samples[0].tobytes()
    status, _, answer = call(
        app,
        "POST",
        "/api/predict/",
        body,
        CONTENT_TYPE="application/octet-stream",
        CONTENT_LENGTH=str(len(body)),
    )
    assert status == 200 and len(answer["predictions"][0]["top_k"]) == 10


@pytest.fixture
def environment_app(monkeypatch):
    """service.app's module-level `app`, built afresh from the environment the test sets."""
    monkeypatch.delitem(service_app.__dict__, "app", raising=False)
    yield lambda: service_app.app
    service_app.__dict__.pop("app", None)


@pytest.mark.slow
def test_the_module_level_app_reads_the_environment(
    environment_app, monkeypatch, candidate_dir, tmp_path
):
    # A relative MODEL_DIR is read from the repository root, whatever the working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_DIR", os.path.relpath(candidate_dir, REPO_ROOT))
    monkeypatch.setenv("MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("MAX_BATCH", "7")
    monkeypatch.setenv("DEFAULT_TOP_K", "2")
    monkeypatch.setenv("CPU_SHARE", "0.5")
    monkeypatch.setenv("SAMPLE_CPU_MS", "2.5")
    monkeypatch.setenv("LATENCY_BUDGET_MS", "300")
    monkeypatch.setenv("LARGE_PARSES", "3")
    monkeypatch.setenv("BATCH_MAX_WAIT_MS", "5")
    monkeypatch.setenv("BATCH_IDLE_WAIT_MS", "0")  # zero is a wait too: none
    monkeypatch.setenv("BATCH_PAD_FRACTION", "0.5")
    monkeypatch.setenv("SHED_HOLD_MS", "0")
    app = environment_app()
    assert app.predictor is not None, app.not_ready_reason
    assert (app.limits.max_body_bytes, app.limits.max_batch, app.default_top_k) == (1234, 7, 2)
    assert (app.limits.cpu_share, app.limits.sample_cpu_ms, app.limits.large_parses) == (
        0.5,
        2.5,
        3,
    )
    # 300 ms x 0.5 CPU / 2.5 ms per sample = 60 samples in flight before it sheds.
    assert app.admission.capacity == 60
    batcher = app.predict_handler.batcher
    assert (batcher.max_wait_seconds, batcher.idle_wait_seconds) == (0.005, 0.0)
    assert app.predictor.router.pad_from == 2  # half of the batch of 4
    assert app.limits.shed_hold_ms == 0
    assert app.body_limits.float32_bytes == 1234 and app.body_limits.json_bytes == 1234


def test_a_missing_bundle_is_named_relative_to_the_bundle(environment_app, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", "no-such-release")
    reason = environment_app().not_ready_reason
    assert reason.startswith("manifest.json is missing from the bundle folder"), reason
    assert str(REPO_ROOT) not in reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BATCH", "-1"),
        ("LARGE_PARSES", "lots"),
        ("MAX_BODY_BYTES", "²"),
        ("CPU_SHARE", "nan"),
        ("SAMPLE_CPU_MS", "inf"),
        ("LATENCY_BUDGET_MS", "-5"),
        ("BATCH_MAX_WAIT_MS", "-1"),
        ("BATCH_IDLE_WAIT_MS", "soon"),
        ("BATCH_PAD_FRACTION", "0"),
        ("SHED_HOLD_MS", "nan"),
    ],
)
def test_a_bad_number_in_the_environment_stops_the_worker_with_its_name(
    environment_app, monkeypatch, name, value
):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        environment_app()


def worker_pid(service) -> int:
    return requests.get(f"{service.url}/api/health/", timeout=5).json()["worker_pid"]


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] and "expected" in body and "Traceback" not in response.text
    return body["error"]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_predict_json_batch_equals_float32_batch(demo_service, samples):
    as_json = requests.post(
        f"{demo_service.url}/api/predict", json={"instances": samples[:3].tolist()}, timeout=10
    ).json()
    as_bytes = requests.post(
        f"{demo_service.url}/api/predict", data=samples[:3].tobytes(), headers=FLOAT32, timeout=10
    ).json()
    assert as_json["predictions"] == as_bytes["predictions"]


def post_in_process(app, body: bytes, content_type: str = "application/json"):
    """One predict through the WSGI callable with a declared Content-Length."""
    return call(
        app,
        "POST",
        "/api/predict/",
        body,
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(len(body)),
    )


def large_json(samples: np.ndarray, separator: bytes = b",") -> bytes:
    """Samples as {"instances": [...]}, each sample written by orjson, over 512 KiB in all."""
    body = b'{"instances": [' + separator.join(orjson.dumps(s.tolist()) for s in samples) + b"]}"
    assert len(body) > 512 << 10  # the size that takes the sample-by-sample parse
    return body


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout",
    [b",", b", ", b" ,\n  "],
    ids=["compact", "spaced", "one sample per line"],
)
def test_a_large_json_batch_equals_the_float32_batch(candidate_dir, samples, layout):
    app = create_app(candidate_dir)
    float32_status, _, as_bytes = post_in_process(app, samples.tobytes(), FLOAT32["Content-Type"])
    json_status, _, as_json = post_in_process(app, large_json(samples, layout))
    assert (json_status, float32_status) == (200, 200), as_json
    assert as_json["predictions"] == as_bytes["predictions"]
    assert len(as_json["predictions"]) == len(samples)


def irregular_batches(samples: np.ndarray) -> dict[str, tuple[bytes, int, str]]:
    rows = samples.tolist()
    short_row = [*rows[:3], [rows[3][0][:-1], *rows[3][1:]], *rows[4:]]
    shifted = [*rows[:3], [*rows[3], rows[3][0]], rows[4][:-1], *rows[5:]]
    return {
        "a row one value short": (orjson.dumps({"instances": short_row}), 400, "ragged"),
        "a row moved to the next sample": (orjson.dumps({"instances": shifted}), 400, "ragged"),
        "a number before the first sample": (
            b'{"instances": [1.5, ' + large_json(samples)[15:],
            400,
            "ragged",
        ),
        "one sample too many": (large_json(np.concatenate([samples, samples[:1]])), 413, "lists"),
        "a string for a number": (
            orjson.dumps({"instances": [[["x", *rows[0][0][1:]], *rows[0][1:]], *rows[1:]]}),
            400,
            "not numbers",
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "a row one value short",
        "a row moved to the next sample",
        "a number before the first sample",
        "one sample too many",
        "a string for a number",
    ],
)
def test_an_irregular_large_json_batch_gets_the_checked_paths_answer(candidate_dir, samples, case):
    app = create_app(candidate_dir, max_batch=len(samples))
    body, status, words = irregular_batches(samples)[case]
    got_status, _, answer = post_in_process(app, body)
    assert got_status == status and words in answer["error"], answer


@pytest.mark.slow
def test_metadata_describes_the_contract(demo_service, reference):
    body = requests.get(f"{demo_service.url}/api/metadata/", timeout=5).json()
    assert body["input"]["shape"] == [65, 243]
    assert body["model_name"] == "model"  # the demo's source model is model.keras
    assert body["labels"] == list(reference.contract.labels)
    assert body["model_sha256"] == reference.sha256 and body["quantization"] == "none"
    assert body["preprocessing"] == "affine"
    assert "verdicts" in body


BAD_REQUESTS = [
    ("wrong shape", dict(json={"instances": [[1.0, 2.0]]}), 400, "shape [1, 2]"),
    ("non-numeric", dict(json={"instances": [["a"] * 243] * 65}), 400, "not numbers"),
    ("booleans", dict(json={"instances": [[True] * 243] * 65}), 400, "booleans"),
    ("one boolean", dict(json={"instances": [[1.0] * 242 + [False]] * 65}), 400, "booleans"),
    ("nulls", dict(json={"instances": [[None] * 243] * 65}), 400, "not numbers"),
    (
        "overflow once normalised",
        dict(json={"instances": [[3e38] * 243] * 65}),
        400,
        "overflows float32 once normalised",
    ),
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
        "too large",
    ),
    ("top_k zero", dict(params={"top_k": "0"}, json={"instances": []}), 400, "top_k='0'"),
    ("top_k too large", dict(params={"top_k": "11"}, json={"instances": []}), 400, "top_k='11'"),
    ("top_k superscript", dict(params={"top_k": "²"}, json={"instances": []}), 400, "top_k='²'"),
    ("no content type", dict(data=b"\x00" * 8), 415, "'none' is not supported"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_json_error_and_the_worker_survives(demo_service, case):
    _, kwargs, status, words = case
    before = worker_pid(demo_service)
    error = error_of(
        requests.post(f"{demo_service.url}/api/predict/", timeout=10, **kwargs), status
    )
    assert words in error
    assert worker_pid(demo_service) == before


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_unknown_paths_and_wrong_methods(demo_service):
    assert "no such path" in error_of(requests.get(f"{demo_service.url}/nowhere", timeout=5), 404)
    response = requests.delete(f"{demo_service.url}/api/predict/", timeout=5)
    error_of(response, 405)
    assert response.headers["Allow"] == "POST"
    response = requests.post(f"{demo_service.url}/api/health/", timeout=5)
    error_of(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.slow
def test_one_access_log_line_per_request_with_status_and_time(demo_service):
    requests.get(f"{demo_service.url}/api/log-probe-7f3a", timeout=5)
    lines = [line for line in demo_service.log_text().splitlines() if "log-probe-7f3a" in line]
    assert len(lines) == 1
    assert " GET /api/log-probe-7f3a 404 " in lines[0] and lines[0].endswith("ms")


@pytest.mark.slow
def test_a_concurrent_burst_gets_every_answer_right(demo_service, reference, samples):
    # Same bundle, same runtime, one thread each: the served answer is the predictor's, exactly.
    expected = reference.predict(samples, top_k=3)
    before = worker_pid(demo_service)
    wrong, lock = [], threading.Lock()

    def client(thread_index: int) -> None:
        with requests.Session() as session:
            for request_index in range(50):
                index = (thread_index * 50 + request_index) % len(samples)
                response = session.post(
                    f"{demo_service.url}/api/predict/?top_k=3",
                    data=samples[index].tobytes(),
                    headers=FLOAT32,
                    timeout=30,
                )
                answer = response.json()["predictions"][0] if response.ok else response.text
                if answer != expected[index]:
                    with lock:
                        wrong.append((index, response.status_code, answer))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    assert worker_pid(demo_service) == before


def bundle_copy(candidate_dir: Path, destination: Path) -> Path:
    shutil.copytree(candidate_dir, destination)
    return destination


@pytest.mark.slow
def test_a_missing_bundle_answers_503_with_the_reason(start_service, tmp_path):
    service = start_service(tmp_path / "empty")
    response = requests.get(f"{service.url}/api/health/", timeout=5)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["predictor"] == "not ready"
    assert "manifest.json is missing" in body["reason"]
    predict = requests.post(f"{service.url}/api/predict/", json={"instances": [1]}, timeout=5)
    assert "predictor not ready" in error_of(predict, 503)
    error_of(requests.get(f"{service.url}/api/metadata/", timeout=5), 503)


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_corrupt_model_answers_503(start_service, candidate_dir, tmp_path):
    bundle = bundle_copy(candidate_dir, tmp_path / "bundle")
    (bundle / "model.tflite").write_bytes(b"garbage" * 100)
    service = start_service(bundle)
    response = requests.get(f"{service.url}/api/health/", timeout=5)
    assert response.status_code == 503 and "sha256" in response.json()["reason"]


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
