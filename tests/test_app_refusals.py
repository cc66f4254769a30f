"""A client's mistakes against render.yaml's gunicorn: a JSON error naming the problem, a
worker that survives, non-finite values and bodies over the limit refused."""

import numpy as np
import pytest
import requests
from app_helpers import FLOAT32, error_of, worker_pid

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
def test_a_small_body_of_nested_empty_lists_is_counted_and_refused_before_it_is_parsed(
    demo_service,
):
    # 200 KB, under the 512 KiB where bodies are parsed in pieces: parsed whole, its 80,000
    # lists would hold the worker (and every health check) for about 25 ms of CPU each time.
    lists = b"[[]]," * 40_000 + b"[[]]"
    predict = requests.post(
        f"{demo_service.url}/api/predict/",
        data=b'{"instances": [' + lists + b"]}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert "80003 JSON lists, more than a batch of the allowed size holds" in error_of(predict, 413)
    v2 = requests.post(
        f"{demo_service.url}/v2/models/model/infer",
        data=b'{"inputs": [{"name": "input", "shape": [1, 65, 243], "datatype": "FP32", '
        + b'"data": ['
        + lists
        + b"]}]}",
        timeout=10,
    )
    assert v2.status_code == 413 and "JSON lists, more than a batch" in v2.json()["error"], v2.text[
        :300
    ]
    assert requests.get(f"{demo_service.url}/api/health/", timeout=5).status_code == 200


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
