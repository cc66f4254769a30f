"""CPU of each per-request piece of a single-sample float32 predict, in-process, against invoke().

`python -m benchmarks.request_pieces BUNDLE SAMPLES.npz` times, with `time.process_time` over
many repetitions (least of a few rounds), each step the service takes for one request outside
the server: the WSGI call as a whole (dispatch, admission, body, decoding, batching hand-off,
answer, JSON, log line) and its parts one by one, beside a bare batch-1 invoke(). What is left
of a served request's CPU (benchmarks/cpu_per_request.py) is the server's own: HTTP parsing,
the socket, gevent. Prints and writes reports/request_pieces.json.
"""

import io
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from pipeline.paths import REPO_ROOT

REPEATS = 2000
ROUNDS = 3


def least_us(step: Callable[[], object], repeats: int = REPEATS) -> float:
    """Least CPU microseconds of one `step` over ROUNDS rounds of `repeats` calls."""
    for _ in range(50):
        step()
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeats):
            step()
        rounds.append((time.process_time() - started) * 1e6 / repeats)
    return round(min(rounds), 1)


def request_pieces(bundle: Path, samples_path: Path) -> dict:
    """CPU µs of each piece of one single-sample float32 request, and of a bare invoke."""
    from service.app import create_app
    from service.body import float32_instances, read_body

    logging.basicConfig(level=logging.INFO, stream=io.StringIO())  # formatted, not printed
    app = create_app(bundle, batch_max_wait_ms=0.0)
    predictor = app.predictor
    handler = app.predict_handler
    with np.load(samples_path) as archive:
        sample = archive["X"][0].astype("<f4")
    body = sample.tobytes()

    def environ() -> dict:
        return {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/predict/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/octet-stream",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }

    read = read_body(environ(), len(body), len(body))
    raw = predictor.as_batch(float32_instances(read, predictor.contract, len(body)))
    normalised = predictor.normalised(raw)
    outputs = predictor.outputs(normalised, route="single")
    answer = {"predictions": predictor.answers(outputs, 3), "model_sha256": predictor.sha256}
    single = predictor.router.single
    pieces = {
        "wsgi_call_total": least_us(lambda: app(environ(), lambda status, headers: None), 500),
        "bare_invoke": least_us(lambda: single.run(normalised), 500),
        "environ_and_body_read": least_us(lambda: read_body(environ(), len(body), len(body))),
        "decode_and_check": least_us(
            lambda: predictor.as_batch(float32_instances(read, predictor.contract, len(body)))
        ),
        "normalise_and_check": least_us(lambda: predictor.normalised(raw)),
        "batcher_hand_off_and_invoke": least_us(lambda: handler.batcher.outputs(raw), 500),
        "top_k_answers": least_us(lambda: predictor.answers(outputs, 3)),
        "json_encoding": least_us(lambda: orjson.dumps(answer)),
        "log_line": least_us(
            lambda: logging.getLogger("service").info(
                "%s %s %d %.2fms", "POST", "/api/predict/", 200, 1.234
            )
        ),
    }
    pieces["batcher_hand_off"] = round(
        pieces["batcher_hand_off_and_invoke"] - pieces["bare_invoke"], 1
    )
    return {"unit": "CPU microseconds per request (least of 3 rounds)", "pieces": pieces}


if __name__ == "__main__":
    # As in the service: gunicorn's gevent worker patches threading and time.sleep first.
    from gevent import monkey

    monkey.patch_all()
    result = request_pieces(Path(sys.argv[1]), Path(sys.argv[2]))
    (REPO_ROOT / "reports" / "request_pieces.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
