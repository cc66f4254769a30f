"""Property-based: random requests never get a 5xx, and the worker stays up."""

import io
import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app

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
BODIES = st.one_of(
    st.binary(max_size=2048),
    JSON_VALUES.map(lambda value: json.dumps({"instances": value}).encode()),
    st.integers(0, 3).map(lambda n: b"\x00\x00\x80\x7f" * (65 * 243 * n)),  # +inf floats
)
QUERIES = st.sampled_from(
    ["", "top_k=1", "top_k=10", "top_k=-1", "top_k=abc", "top_k=", "top_k=1&top_k=99", "x=%ff"]
)


@pytest.fixture(scope="module")
def app(candidate_dir):
    """The WSGI app built by its factory, in this process."""
    return create_app(candidate_dir, max_body_bytes=200_000)


def call(app, method, path, content_type, body, query, declare_length):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
    }
    if declare_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    statuses = []
    payload = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), payload


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=METHODS,
    path=PATHS,
    content_type=CONTENT_TYPES,
    body=BODIES,
    query=QUERIES,
    declare_length=st.booleans(),
)
def test_no_request_makes_the_app_answer_5xx(
    app, method, path, content_type, body, query, declare_length
):
    status, payload = call(app, method, path, content_type, body, query, declare_length)
    assert status < 500, payload
    assert method == "HEAD" or payload.startswith(b"{")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=METHODS, path=PATHS, content_type=CONTENT_TYPES, body=BODIES, query=QUERIES)
def test_random_requests_over_http_never_5xx_and_the_worker_stays(
    demo_service, method, path, content_type, body, query
):
    before = requests.get(f"{demo_service.url}/api/health/", timeout=5).json()["worker_pid"]
    url = f"{demo_service.url}{path}" + (f"?{query}" if query else "")
    response = requests.request(
        method,
        url,
        data=body,
        timeout=10,
        headers={"Content-Type": content_type} if content_type else {},
    )
    assert response.status_code < 500, response.text
    after = requests.get(f"{demo_service.url}/api/health/", timeout=5).json()["worker_pid"]
    assert after == before
