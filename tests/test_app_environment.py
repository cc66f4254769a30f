"""The service's settings from the environment: the module-level app gunicorn loads, a
missing bundle named, a bad number stopping the worker with its name, the default top_k."""

import os

import pytest
from app_helpers import call

import service.app as service_app
from pipeline.paths import REPO_ROOT
from service.app import create_app


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
