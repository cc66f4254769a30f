"""A bundle the service cannot use: the service still boots, routes, and answers 503
naming the reason, in-process and under render.yaml's gunicorn on loopback."""

import shutil
from pathlib import Path

import pytest
import requests
from app_helpers import assert_not_ready, call, error_of, fake_bundle

from service.app import create_app


def test_a_model_the_runtime_cannot_read_answers_503(tmp_path):
    app = create_app(fake_bundle(tmp_path / "bundle", b"not a flatbuffer" * 8))
    assert_not_ready(app, "cannot be loaded by ai-edge-litert")


def test_a_manifest_of_the_wrong_shape_still_boots_and_answers_503(tmp_path):
    bundle = fake_bundle(tmp_path / "bundle", b"x", input={"shape": ["sixty-five"]})
    assert_not_ready(create_app(bundle), "input shape ['sixty-five'] is not a list of positive")


def test_a_manifest_field_of_the_wrong_kind_is_the_bundles_fault(tmp_path):
    bundle = fake_bundle(tmp_path / "bundle", b"x", preprocessing={"kind": "affine"})
    app = create_app(bundle)
    assert_not_ready(app, "manifest.json has a field of the wrong shape (KeyError: 'scale')")
    assert call(app, "GET", "/api/health/")[2]["fault"] == "bundle"


def test_a_bug_of_ours_while_loading_is_an_internal_error_with_its_traceback_logged(
    tmp_path, monkeypatch, caplog
):
    def broken_predictor(*args, **kwargs):
        raise ZeroDivisionError("a bug of the service's own")

    # The one stand-in here: a bug in the service's own loading code cannot be had for real.
    monkeypatch.setattr("service.app.Predictor", broken_predictor)
    app = create_app(fake_bundle(tmp_path / "bundle", b"x"))
    assert_not_ready(app, "an internal error; please report it")
    health = call(app, "GET", "/api/health/")[2]
    assert health["fault"] == "internal_error" and "rebuild" not in health["reason"]
    assert "ZeroDivisionError: a bug of the service's own" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text


def test_routing_needs_no_model(tmp_path):
    app = create_app(tmp_path / "nothing-here")
    status, headers, body = call(app, "PUT", "/api/metadata")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and body["expected"]
    status, _, body = call(app, "GET", "/api/predict/extra")
    assert status == 404 and "/api/predict/" in body["expected"]


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
    # A build that left no record of a `git lfs pull` did not pull.
    service = start_service(bundle, env={"LFS_PULL_LOG": str(tmp_path / "no-record.log")})
    body = requests.get(f"{service.url}/api/health/", timeout=5).json()
    assert body["fault"] == "lfs_not_pulled"
    assert body["reason"] == (
        "model.tflite is a Git LFS pointer: the build did not pull Git LFS objects (it left "
        "no record of a `git lfs pull`); the build command must run `git lfs pull`, as "
        "render.yaml's does"
    )


@pytest.mark.slow
def test_a_corrupt_model_answers_503(start_service, candidate_dir, tmp_path):
    bundle = bundle_copy(candidate_dir, tmp_path / "bundle")
    (bundle / "model.tflite").write_bytes(b"garbage" * 100)
    service = start_service(bundle)
    response = requests.get(f"{service.url}/api/health/", timeout=5)
    body = response.json()
    assert response.status_code == 503 and body["fault"] == "model_file_corrupt"
    assert body["reason"].startswith("model.tflite is corrupt: its sha256 is ")
