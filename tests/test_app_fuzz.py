"""Property-based: random requests never get a 5xx, and the worker stays up."""

import io
import json
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

PATHS = st.sampled_from(
    [
        "/api/predict/",
        "/api/predict",
        "/api/health/",
        "/api/metadata/",
        "/",
        "/api/",
        "/api/predict//",
        "/%00",
        "/api/health/../predict",
        "/v2/models/model/infer",
        "/v2/models/model/versions/x/infer",
        "/v2/models/model",
        "/v2/models//infer",
        "/v2/health/ready",
        "/openapi.json",
    ]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"])
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/octet-stream",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "APPLICATION/JSON",
        "multipart/form-data; boundary=x",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=30,
)
# Open Inference Protocol requests with any shape, datatype, data and parameters.
V2_BODIES = st.builds(
    lambda shape, datatype, data, parameters: json.dumps(
        {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}
        | {"parameters": parameters}
    ).encode(),
    JSON_VALUES,
    st.sampled_from(["FP32", "FP64", "BYTES", ""]),
    JSON_VALUES,
    JSON_VALUES,
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    JSON_VALUES.map(lambda value: json.dumps({"instances": value}).encode()),
    V2_BODIES,
    st.integers(0, 3).map(lambda n: b"\x00\x00\x80\x7f" * (65 * 243 * n)),  # +inf floats
)
QUERIES = st.one_of(
    st.sampled_from(["", "top_k=1", "top_k=10", "top_k=-1", "top_k=", "top_k=1&top_k=99", "x=%ff"]),
    # Any text as top_k, percent-encoded, and text of digits of every script such as "²".
    st.text(max_size=30).map(lambda value: f"top_k={quote(value)}"),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3).map(
        lambda value: f"top_k={quote(value)}"
    ),
)
# Extra headers a client might send; Content-Length and Transfer-Encoding are left to requests
# over HTTP (a false length only makes gunicorn wait for bytes), and fuzzed in-process instead.
HEADER_NAMES = st.sampled_from(
    [
        "Accept",
        "Accept-Encoding",
        "Expect",
        "X-Forwarded-For",
        "Cookie",
        "X-Anything",
        "Range",
        "Inference-Header-Content-Length",
        "Content-Encoding",
    ]
)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3)
DECLARED_LENGTHS = st.one_of(
    st.just("exact"),
    st.none(),
    st.integers(0, 10**9).map(str),
    st.text(max_size=6),
)


@pytest.fixture(scope="module")
def app_settings() -> dict:
    """A 200 KB body limit: random bodies reach it without taking long to build."""
    return {"max_body_bytes": 200_000}


def call(app, method, path, content_type, body, query, declared_length, headers):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    if declared_length is not None:
        environ["CONTENT_LENGTH"] = (
            str(len(body)) if declared_length == "exact" else declared_length
        )
    statuses = []
    payload = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), payload


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=METHODS,
    path=PATHS,
    content_type=CONTENT_TYPES,
    body=BODIES,
    query=QUERIES,
    declared_length=DECLARED_LENGTHS,
    headers=HEADERS,
)
def test_no_request_makes_the_app_answer_5xx(
    app, method, path, content_type, body, query, declared_length, headers
):
    status, payload = call(app, method, path, content_type, body, query, declared_length, headers)
    assert status < 500, payload
    assert method == "HEAD" or payload.startswith(b"{")


def health_of(service) -> dict:
    try:
        return requests.get(f"{service.url}/api/health/", timeout=5).json()
    except requests.ConnectionError:
        pytest.fail(f"the service stopped answering; its log ends:\n{service.log_text()[-3000:]}")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=METHODS,
    path=PATHS,
    content_type=CONTENT_TYPES,
    body=BODIES,
    query=QUERIES,
    headers=HEADERS,
)
def test_random_requests_over_http_never_5xx_and_the_worker_stays(
    demo_service, method, path, content_type, body, query, headers
):
    before = health_of(demo_service)["worker_pid"]
    url = f"{demo_service.url}{path}" + (f"?{query}" if query else "")
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    try:
        response = requests.request(method, url, data=body, timeout=10, headers=headers)
    except requests.ConnectionError:
        pytest.fail(f"connection dropped; the service log ends:\n{demo_service.log_text()[-3000:]}")
    assert response.status_code < 500, response.text
    assert health_of(demo_service)["worker_pid"] == before


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top_k=st.text(max_size=30) | st.text(st.characters(categories=["Nd", "No"]), max_size=3),
    declared_length=DECLARED_LENGTHS,
)
def test_any_top_k_or_content_length_on_a_good_body_is_answered_200_or_4xx(
    app, top_k, declared_length
):
    body = b"\x00" * (65 * 243 * 4)
    status, payload = call(
        app,
        "POST",
        "/api/predict/",
        "application/octet-stream",
        body,
        f"top_k={quote(top_k)}",
        declared_length,
        {},
    )
    assert status == 200 or 400 <= status < 500, payload
