"""In-process latency benchmarks (pytest-benchmark): regressions show as numbers.

`make test` runs each once as a test (benchmarks disabled in pyproject's addopts);
`make bench-latency` times them and prints the table.
"""

import io

import orjson
import pytest

from service.body import json_instances

pytestmark = pytest.mark.slow


def post(app, body: bytes, content_type: str) -> int:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/predict/",
        "QUERY_STRING": "",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    statuses = []
    app(environ, lambda status, headers: statuses.append(status))
    return int(statuses[0].split()[0])


def test_predictor_one_sample(benchmark, app, samples):
    probabilities = benchmark(app.predictor.predict_proba, samples[:1])
    assert probabilities.shape == (1, 10)


def test_predictor_batch_of_16(benchmark, app, samples):
    probabilities = benchmark(app.predictor.predict_proba, samples)
    assert probabilities.shape == (16, 10)


def test_request_with_a_float32_body(benchmark, app, samples):
    body = samples[0].tobytes()
    assert benchmark(post, app, body, "application/octet-stream") == 200


def test_request_with_a_json_body(benchmark, app, samples):
    body = orjson.dumps({"instances": samples[0].tolist()})
    assert benchmark(post, app, body, "application/json") == 200


def test_json_decoding_alone(benchmark, app, samples):
    body = orjson.dumps({"instances": samples[0].tolist()})
    decoded = benchmark(json_instances, bytearray(body), app.body_limits)
    assert decoded.shape == (65, 243)
