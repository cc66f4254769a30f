"""Predictions, health and metadata from render.yaml's gunicorn on loopback, equal to the
predictor in this process, one at a time and in a concurrent burst; routing and access log."""

import threading

import pytest
import requests
from app_helpers import FLOAT32, error_of, worker_pid


@pytest.mark.slow
def test_health_reports_the_model_runtime_and_memory(demo_service, predictor):
    for path in ("/api/health/", "/api/health"):
        response = requests.get(demo_service.url + path, allow_redirects=False, timeout=5)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["predictor"] == "ready"
        assert body["model_sha256"] == predictor.sha256
        assert body["model_version"] == predictor.manifest["version"]
        assert body["runtime"] == "ai-edge-litert" and body["runtime_version"] == "2.3.0"
        assert body["uptime_seconds"] >= 0 and 10 < body["worker_memory_mb"] < 512


@pytest.mark.slow
def test_predict_json_one_sequence(demo_service, predictor, samples):
    response = requests.post(
        f"{demo_service.url}/api/predict/", json={"instances": samples[0].tolist()}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_sha256"] == predictor.sha256
    expected = predictor.predict(samples[:1], top_k=3)[0]
    assert body["predictions"][0]["label"] == expected["label"]
    assert [entry["label"] for entry in body["predictions"][0]["top_k"]] == [
        entry["label"] for entry in expected["top_k"]
    ]
    assert body["predictions"][0]["probability"] == pytest.approx(expected["probability"], abs=1e-6)


@pytest.mark.slow
def test_predict_float32_batch_with_top_k(demo_service, predictor, samples):
    response = requests.post(
        f"{demo_service.url}/api/predict/?top_k=5",
        data=samples[:4].astype("<f4").tobytes(),
        headers=FLOAT32,
        timeout=10,
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 4 and all(len(p["top_k"]) == 5 for p in predictions)
    assert [p["label"] for p in predictions] == [p["label"] for p in predictor.predict(samples[:4])]


@pytest.mark.slow
def test_predict_json_batch_equals_float32_batch(demo_service, samples):
    as_json = requests.post(
        f"{demo_service.url}/api/predict", json={"instances": samples[:3].tolist()}, timeout=10
    ).json()
    as_bytes = requests.post(
        f"{demo_service.url}/api/predict", data=samples[:3].tobytes(), headers=FLOAT32, timeout=10
    ).json()
    assert as_json["predictions"] == as_bytes["predictions"]


@pytest.mark.slow
def test_metadata_describes_the_contract(demo_service, predictor):
    body = requests.get(f"{demo_service.url}/api/metadata/", timeout=5).json()
    assert body["input"]["shape"] == [65, 243]
    assert body["model_name"] == "model"  # the demo's source model is model.keras
    assert body["labels"] == list(predictor.contract.labels)
    assert body["model_sha256"] == predictor.sha256 and body["quantization"] == "none"
    assert body["preprocessing"] == "affine"
    assert "verdicts" in body


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
def test_a_concurrent_burst_gets_every_answer_right(demo_service, predictor, samples):
    # Same bundle, same runtime, one thread each: the served answer is the predictor's, exactly.
    expected = predictor.predict(samples, top_k=3)
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
