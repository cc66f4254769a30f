"""Large JSON batches through the service's factory in-process: the fast parse equals the
float32 batch, and an irregular batch gets the answer of the checked path."""

import numpy as np
import orjson
import pytest
from app_helpers import FLOAT32, call

from service.app import create_app


def post_in_process(app, body: bytes, content_type: str = "application/json"):
    """One predict through the WSGI callable with a declared Content-Length."""
    return call(
        app,
        "POST",
        "/api/predict/",
        body,
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(len(body)),
    )


def large_json(samples: np.ndarray, separator: bytes = b",") -> bytes:
    """Samples as {"instances": [...]}, each sample written by orjson, over 512 KiB in all."""
    body = b'{"instances": [' + separator.join(orjson.dumps(s.tolist()) for s in samples) + b"]}"
    assert len(body) > 512 << 10  # the size that takes the sample-by-sample parse
    return body


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout",
    [b",", b", ", b" ,\n  "],
    ids=["compact", "spaced", "one sample per line"],
)
def test_a_large_json_batch_equals_the_float32_batch(candidate_dir, samples, layout):
    app = create_app(candidate_dir)
    float32_status, _, as_bytes = post_in_process(app, samples.tobytes(), FLOAT32["Content-Type"])
    json_status, _, as_json = post_in_process(app, large_json(samples, layout))
    assert (json_status, float32_status) == (200, 200), as_json
    assert as_json["predictions"] == as_bytes["predictions"]
    assert len(as_json["predictions"]) == len(samples)


def irregular_batches(samples: np.ndarray) -> dict[str, tuple[bytes, int, str]]:
    rows = samples.tolist()
    short_row = [*rows[:3], [rows[3][0][:-1], *rows[3][1:]], *rows[4:]]
    shifted = [*rows[:3], [*rows[3], rows[3][0]], rows[4][:-1], *rows[5:]]
    return {
        "a row one value short": (orjson.dumps({"instances": short_row}), 400, "ragged"),
        "a row moved to the next sample": (orjson.dumps({"instances": shifted}), 400, "ragged"),
        "a number before the first sample": (
            b'{"instances": [1.5, ' + large_json(samples)[15:],
            400,
            "ragged",
        ),
        "one sample too many": (large_json(np.concatenate([samples, samples[:1]])), 413, "lists"),
        "a string for a number": (
            orjson.dumps({"instances": [[["x", *rows[0][0][1:]], *rows[0][1:]], *rows[1:]]}),
            400,
            "not numbers",
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "a row one value short",
        "a row moved to the next sample",
        "a number before the first sample",
        "one sample too many",
        "a string for a number",
    ],
)
def test_an_irregular_large_json_batch_gets_the_checked_paths_answer(candidate_dir, samples, case):
    app = create_app(candidate_dir, max_batch=len(samples))
    body, status, words = irregular_batches(samples)[case]
    got_status, _, answer = post_in_process(app, body)
    assert got_status == status and words in answer["error"], answer
