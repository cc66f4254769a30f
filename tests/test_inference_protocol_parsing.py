"""The Open Inference Protocol (v2 REST) through the WSGI factory: a client's mistakes refused
with the protocol's error, shedding, readiness, and large flat JSON bodies parsed in pieces."""

import io
import json

import numpy as np
import orjson
import pytest

from service.app import create_app
from service.tensor_json import split_flat_data


def call(app, method: str, path: str, body: bytes = b"", **environ) -> tuple[int, dict, bytes]:
    """One request through the WSGI callable: status, headers and raw body."""
    statuses, headers = [], {}

    def start_response(status, response_headers):
        statuses.append(status)
        headers.update(response_headers)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **environ,
    }
    payload = b"".join(app(environ, start_response))
    return int(statuses[0].split()[0]), headers, payload


def infer_body(samples: np.ndarray, **input_overrides) -> bytes:
    """A JSON inference request for `samples` (nested data), with fields replaced or removed."""
    tensor = {"name": "input", "shape": list(samples.shape), "datatype": "FP32"}
    tensor["data"] = samples.tolist()  # nested: the flat form is what tritonclient sends
    tensor |= input_overrides
    return json.dumps({"inputs": [{k: v for k, v in tensor.items() if v is not None}]}).encode()


@pytest.fixture(scope="module")
def app_settings() -> dict:
    """MAX_BATCH 4: a request of 5 samples is over it."""
    return {"max_batch": 4}


def refusal(app, body: bytes, path: str = "/v2/models/model/infer", **environ) -> tuple[int, str]:
    status, _, payload = call(app, "POST", path, body, **environ)
    error = json.loads(payload)
    assert set(error) == {"error"}, error
    return status, error["error"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "status", "words"),
    [
        ({"datatype": "FP64"}, 400, "datatype 'FP64'"),
        ({"name": "x"}, 400, "unknown input 'x'"),
        ({"shape": [2, 65]}, 400, "is not the model's"),
        ({"shape": [5, 65, 243]}, 413, "5 samples"),
        ({"data": [[1.0]]}, 400, "has 1 values"),
        ({"data": "abc"}, 400, "not numbers"),
        ({"data": [True] * 15795}, 400, "not numbers"),
        ({"data": [1e39] * 15795}, 400, "NaN or infinity"),
        ({"data": None, "parameters": {"binary_data_size": 7}}, 400, "does not fit shape"),
        ({"data": None}, 400, "neither data nor binary_data_size"),
    ],
)
def test_a_clients_mistake_is_a_4xx_naming_it(app, samples, overrides, status, words):
    answer = refusal(app, infer_body(samples[:1], **overrides))
    assert answer[0] == status and words in answer[1], answer


@pytest.mark.slow
def test_binary_and_header_mistakes_are_400s(app, samples):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 65, 243],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": samples[0].nbytes},
                }
            ]
        }
    ).encode()
    short = header + samples[0].tobytes()[:-4]
    length = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": str(len(header))}
    assert "bytes of binary data" in refusal(app, short, **length)[1]
    extra = header + samples[0].tobytes() + b"\0" * 4
    assert "belong to no input" in refusal(app, extra, **length)[1]
    past = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": str(len(header) * 1000)}
    assert "past the body's end" in refusal(app, header, **past)[1]
    gzip = {"HTTP_CONTENT_ENCODING": "gzip"}
    assert refusal(app, infer_body(samples[:1]), **gzip) == (
        415,
        "Content-Encoding 'gzip' is not supported; expected an uncompressed body",
    )
    assert refusal(app, b"{not json")[0] == 400


@pytest.mark.slow
def test_a_saturated_worker_sheds_v2_with_retry_after(app, samples):
    app.admission.try_admit(app.admission.capacity)  # another request's samples in flight
    try:
        status, headers, payload = call(
            app, "POST", "/v2/models/model/infer", infer_body(samples[:1])
        )
    finally:
        app.admission.release(app.admission.capacity)
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert "at capacity" in json.loads(payload)["error"]
    assert call(app, "POST", "/v2/models/model/infer", infer_body(samples[:1]))[0] == 200


def test_an_unusable_bundle_is_live_but_not_ready(tmp_path):
    app = create_app(tmp_path / "missing")
    assert call(app, "GET", "/v2/health/live")[0] == 200
    status, _, payload = call(app, "GET", "/v2/health/ready")
    assert status == 503 and "manifest.json is missing" in json.loads(payload)["error"]
    assert call(app, "GET", "/v2/models/model/ready")[0] == 503
    assert call(app, "POST", "/v2/models/model/infer", b"{}")[0] == 503


def test_model_name_is_the_source_models_file_stem():
    from service.bundle import release_model_name

    assert release_model_name({"source_model": {"file": "model.keras"}}) == "model"
    assert release_model_name({"source_model": {"file": "my model (v2).h5"}}) == "my-model-v2"
    assert release_model_name({"source_model": {"file": "a.b.keras"}}) == "a.b"
    assert release_model_name({}) == "model"


def large_flat_body(samples: np.ndarray, data: bytes | None = None, count: int = 0) -> bytes:
    """A JSON request over 512 KiB with flat data, as tritonclient writes it."""
    shape = [count or len(samples), *samples.shape[1:]]
    head = {"name": "input", "shape": shape, "datatype": "FP32"}
    data = data if data is not None else orjson.dumps(samples.ravel().tolist())
    body = b'{"inputs": [' + orjson.dumps(head)[:-1] + b', "data": ' + data + b"}]}"
    assert len(body) > 512 << 10  # the size that takes the piece-by-piece parse
    return body


def outputs_of(app, body: bytes, **environ) -> np.ndarray:
    status, _, payload = call(app, "POST", "/v2/models/model/infer", body, **environ)
    assert status == 200, payload[:300]
    output = json.loads(payload)["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


@pytest.mark.slow
def test_a_large_flat_json_request_equals_binary_and_nested(app, samples):
    binary_header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [4, 65, 243],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": samples[:4].nbytes},
                }
            ]
        }
    ).encode()
    as_binary = outputs_of(
        app,
        binary_header + samples[:4].tobytes(),
        HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(binary_header)),
    )
    as_flat = outputs_of(app, large_flat_body(samples[:4]))
    as_nested = outputs_of(app, infer_body(samples[:4]))
    assert np.array_equal(as_flat, as_binary) and np.array_equal(as_nested, as_binary)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("a string among the numbers", 400, "not numbers"),
        ("a stray comma", 400, "invalid JSON"),
        ("a sample more than the shape says", 400, "values, its shape says"),
        ("a sample more than MAX_BATCH", 413, "JSON values, more than a batch"),
    ],
)
def test_an_irregular_large_flat_request_gets_the_whole_body_answer(
    app, samples, case, status, words
):
    numbers = orjson.dumps(samples[:4].ravel().tolist())
    bodies = {
        "a string among the numbers": large_flat_body(samples[:4], b'["1.5", ' + numbers[1:]),
        "a stray comma": large_flat_body(samples[:4], numbers[:-1] + b",]"),
        "a sample more than the shape says": large_flat_body(samples[:4], count=3),
        "a sample more than MAX_BATCH": large_flat_body(samples[:5], count=4),
    }
    answer = refusal(app, bodies[case])
    assert answer[0] == status and words in answer[1], answer


def test_flat_data_is_parsed_in_pieces_with_the_event_loop_between():
    values = np.arange(200_000, dtype=np.float32) / 7
    header = b'{"inputs": [{"data": ' + orjson.dumps(values.tolist()) + b', "x": 1}]}'
    yields = []
    emptied, data = split_flat_data(header, len(values), lambda: yields.append(1))
    assert np.array_equal(data, values)
    assert orjson.loads(emptied) == {"inputs": [{"data": [], "x": 1}]}
    assert len(yields) >= len(header) // (128 << 10)
    assert split_flat_data(header, len(values) - 1, lambda: None) is None  # past the batch
