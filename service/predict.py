"""POST /api/predict/: admit the request, read and decode its body, predict in shared batches.

Past the samples a worker admits at once (service/limits.py, `Admission`) a request is
answered 503 with Retry-After before its body is read, after a hold of SHED_HOLD_MS (no CPU).
Its samples join those of concurrent requests in the worker's batcher (service/batching.py),
which yields to the event loop before each invoke, and a large JSON body is parsed a sample
at a time (service/json_samples.py), so a health check waits for at most one step of either.
"""

import time
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from service.batching import Batcher
from service.body import (
    declared_length,
    float32_instances,
    json_instances,
    parse_count,
    read_body,
)
from service.errors import HTTPError
from service.limits import (
    LARGE_BODY_BYTES,
    Admission,
    BodyLimits,
    LargeParses,
    Limits,
)
from service.predictor import InputError, Predictor

JSON_TYPE = "application/json"
FLOAT32_TYPE = "application/octet-stream"


class PredictHandler:
    """Answers predict requests for one ready predictor within the worker's limits."""

    def __init__(
        self, predictor: Predictor, limits: Limits, admission: Admission, default_top_k: int
    ) -> None:
        self.predictor, self.limits, self.admission = predictor, limits, admission
        self.default_top_k = default_top_k
        self.body_limits = BodyLimits.for_contract(predictor.contract, limits)
        self.sample_bytes = predictor.contract.sample_bytes
        self.large_parses = LargeParses(limits.large_parses)
        self.batcher = Batcher(
            predictor,
            max_wait_seconds=limits.batch_max_wait_ms / 1000,
            idle_wait_seconds=limits.batch_idle_wait_ms / 1000,
            samples_admitted=lambda: admission.inflight,
        )

    def __call__(self, environ: dict) -> tuple[int, dict[str, Any]]:
        predictor = self.predictor
        top_k = self._top_k(environ, len(predictor.contract.labels))
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in (JSON_TYPE, FLOAT32_TYPE):
            raise HTTPError(
                415,
                f"content type {content_type[:60] or 'none'!r} is not supported",
                f"{JSON_TYPE} or {FLOAT32_TYPE}",
            )
        is_json = content_type == JSON_TYPE
        limit = self.body_limits.json_bytes if is_json else self.body_limits.float32_bytes
        length = declared_length(environ, limit)
        # Reserve the samples this body can hold at least, before reading it: past the bound
        # the answer is an immediate 503, not a place in an unbounded queue.
        sample_bytes = self.sample_bytes
        reserved = max(1, (length or 0) // (sample_bytes // 2 if is_json else sample_bytes))
        reserved = min(reserved, self.limits.max_batch)
        if not self.admission.try_admit(reserved):
            # Held first, at no CPU: a client that ignores Retry-After and comes straight back
            # then costs at most one refusal per hold, and the CPU stays with health checks and
            # admitted requests. Its body stays unread until the answer.
            time.sleep(self.limits.shed_hold_ms / 1000)
            raise self.shed(f"{self.admission.inflight} samples are being predicted")
        try:
            batch = self._read_batch(environ, is_json, length, limit)
            self.admission.adjust(reserved, len(batch))
            reserved = len(batch)
            # Samples of concurrent requests share invokes (service/batching.py).
            outputs = predictor.answers(self.outputs(batch), top_k=top_k)
        except InputError as error:
            raise HTTPError(400, str(error), predictor.contract.describe()) from None
        finally:
            self.admission.release(reserved)
        return 200, {
            "predictions": outputs,
            "model_sha256": predictor.sha256,
            "model_version": predictor.manifest.get("version"),
        }

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """The model's outputs (n, classes) for an admitted batch; its samples share invokes
        with those of concurrent requests, /api/predict/'s and /v2's alike."""
        return self.batcher.outputs(batch)

    def _read_batch(self, environ: dict, is_json: bool, length: int | None, limit: int):
        contract = self.predictor.contract
        large = is_json and (length is None or length > LARGE_BODY_BYTES)
        if large and not self.large_parses.try_enter():
            raise self.shed("another large JSON body is being parsed")
        try:
            body = read_body(environ, length, limit)
            if is_json:
                values = json_instances(body, self.body_limits, contract.sample_shape)
            else:
                values = float32_instances(body, contract, self.sample_bytes)
            batch: np.ndarray = self.predictor.as_batch(values)
        finally:
            if large:
                self.large_parses.leave()
        if len(batch) > self.limits.max_batch:
            raise HTTPError(
                413,
                f"{len(batch)} samples in one request",
                f"at most {self.limits.max_batch} samples per request",
            )
        return batch

    def shed(self, why: str) -> HTTPError:
        """The 503 with Retry-After for a request this worker has no capacity for now."""
        retry_after = str(self.admission.retry_after_seconds())
        return HTTPError(
            503,
            f"the service is at capacity: {why}",
            f"the same request again after {retry_after} s (Retry-After)",
            headers=[("Retry-After", retry_after)],
        )

    def _top_k(self, environ: dict, label_count: int) -> int:
        asked = parse_qs(environ.get("QUERY_STRING", "")).get("top_k")
        if asked is None:  # a default above this model's label count is not the client's fault
            return min(self.default_top_k, label_count)
        raw = asked[-1]
        top_k = parse_count(raw)
        if top_k is None or not 1 <= top_k <= label_count:
            raise HTTPError(
                400, f"top_k={raw[:40]!r} is not usable", f"an integer from 1 to {label_count}"
            )
        return top_k
