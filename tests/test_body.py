"""Reading a request body: the client's own faults (malformed chunks, a body cut short, a
connection gone) are a 400 that names them; a bug of ours is a 500 with a log line, and the
worker keeps serving."""

import io
import logging

import numpy as np
import pytest
from app_helpers import FLOAT32, call
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData

from service.app import create_app
from service.body import read_body
from service.errors import HTTPError


class FailingStream:
    """A wsgi.input whose read() raises `error` after `good` bytes."""

    def __init__(self, error: BaseException, good: bytes = b"") -> None:
        self.error, self.good = error, io.BytesIO(good)

    def read(self, size: int = -1) -> bytes:
        chunk = self.good.read(size)
        if chunk:
            return chunk
        raise self.error


CLIENT_FAULTS = {
    "bad chunk size": InvalidChunkSize(b"zz"),
    "chunk without CRLF": ChunkMissingTerminator(b"XX"),
    "body ended early": NoMoreData(b""),
    "connection reset": ConnectionResetError(104, "Connection reset by peer"),
    "read timed out": TimeoutError("timed out"),
}


@pytest.mark.parametrize("fault", CLIENT_FAULTS, ids=list(CLIENT_FAULTS))
def test_a_client_fault_while_reading_is_a_400_naming_it(fault):
    error = CLIENT_FAULTS[fault]
    environ = {"wsgi.input": FailingStream(error, good=b"\0" * 100)}
    with pytest.raises(HTTPError) as refused:
        read_body(environ, None, 1 << 20)
    assert refused.value.status == 400
    assert refused.value.error == (f"the request body could not be read ({type(error).__name__})")


def test_a_body_shorter_than_its_content_length_is_a_400():
    environ = {"wsgi.input": io.BytesIO(b"\0" * 100)}
    with pytest.raises(HTTPError) as refused:
        read_body(environ, 400, 1 << 20)
    assert refused.value.status == 400
    assert (
        refused.value.error
        == "the body ended after 100 of the 400 bytes its Content-Length declares"
    )


def test_a_bug_of_ours_while_reading_is_not_blamed_on_the_client():
    environ = {"wsgi.input": FailingStream(AttributeError("'NoneType' has no attribute 'recv'"))}
    with pytest.raises(AttributeError):
        read_body(environ, None, 1 << 20)


@pytest.mark.slow
def test_a_bug_while_reading_is_a_500_with_a_log_line_and_the_worker_serves_on(
    candidate_dir, caplog
):
    app = create_app(candidate_dir)
    sample = np.zeros((1, *app.predictor.contract.sample_shape), "<f4").tobytes()
    bug = FailingStream(AttributeError("'NoneType' has no attribute 'recv'"))
    with caplog.at_level(logging.ERROR):
        status, _, body = call(
            app,
            "POST",
            "/api/predict/",
            CONTENT_TYPE=FLOAT32["Content-Type"],
            **{"wsgi.input": bug},
        )
    assert status == 500
    assert body["error"] == "internal error; see the service log"
    assert "unhandled error on POST /api/predict/" in caplog.text
    assert "AttributeError: 'NoneType' has no attribute 'recv'" in caplog.text
    client_fault = FailingStream(InvalidChunkSize(b"zz"))
    status, _, body = call(
        app,
        "POST",
        "/api/predict/",
        CONTENT_TYPE=FLOAT32["Content-Type"],
        **{"wsgi.input": client_fault},
    )
    assert status == 400 and "InvalidChunkSize" in body["error"]
    status, _, body = call(
        app,
        "POST",
        "/api/predict/",
        sample,
        CONTENT_TYPE=FLOAT32["Content-Type"],
        CONTENT_LENGTH=str(len(sample)),
    )
    assert status == 200 and body["predictions"]
