"""Helpers for the service's tests: one request through the WSGI callable, bundles made
to fail, and the parts of an answer the tests read."""

import hashlib
import io
import json
from pathlib import Path

import requests

FLOAT32 = {"Content-Type": "application/octet-stream"}


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


def worker_pid(service) -> int:
    return requests.get(f"{service.url}/api/health/", timeout=5).json()["worker_pid"]


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] and "expected" in body and "Traceback" not in response.text
    return body["error"]
