"""The Open Inference Protocol (v2 REST, as KServe, Triton and MLServer speak it) on the service.

Routes: GET /v2 (server metadata), /v2/health/live, /v2/health/ready, /v2/models/{name} (model
metadata), /v2/models/{name}/ready and POST /v2/models/{name}/infer, each model route also
under /v2/models/{name}/versions/{version}. Inference goes through the predict path of
/api/predict/ (service/predict.py): the same admission and shedding (503 with Retry-After),
body limits, large-parse slot, inference slot and predictor. Errors are the protocol's
{"error": "..."}; a client's mistake is a 4xx, a model that is not ready or a worker at
capacity a 503 (where the protocol says 4xx for "not ready", 503 is what load balancers and
Render's health check read as not ready; clients such as tritonclient read only 200 or not).
"""

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.body import declared_length, parse_count, read_body
from service.bundle import release_model_name
from service.errors import HTTPError
from service.inference_tensors import (
    DATATYPE,
    INPUT_NAME,
    REQUEST_EXPECTED,
    expected_shape,
    output_name,
    parse_request,
    response_body,
)
from service.limits import LARGE_BODY_BYTES
from service.predict import FLOAT32_TYPE, JSON_TYPE, PredictHandler
from service.predictor import InputError

SERVER_NAME = "tflite-release"
SERVER_VERSION = "1"  # the version of this HTTP interface; the model's is its release's
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "tflite"
HEADER_LENGTH_NAME = "Inference-Header-Content-Length"
HEADER_LENGTH_KEY = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"
MODEL_PATH = re.compile(
    r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?/?"
)
PREFIX = "/v2"


@dataclass(frozen=True)
class RawResponse:
    """A body sent as it is (not JSON-encoded by the app), with its own type and headers."""

    payload: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def error_body(path: str, error: str, expected: str) -> dict[str, str]:
    """A refusal's body: the protocol's {"error"} under /v2, {"error", "expected"} elsewhere."""
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return {"error": f"{error}; expected {expected}" if expected else error}
    return {"error": error, "expected": expected}


class InferenceProtocol:
    """The v2 routes for the service's one model, on its predict handler (None: not ready)."""

    def __init__(self, predict_handler: PredictHandler | None, not_ready_reason: str) -> None:
        self.handler, self.not_ready_reason = predict_handler, not_ready_reason
        manifest = predict_handler.predictor.manifest if predict_handler else {}
        self.model_name = release_model_name(manifest) if predict_handler else None
        self.model_version = str(manifest.get("version") or "")

    def routes(self) -> dict[str, dict[str, Callable]]:
        """The fixed routes, as the app's route table takes them."""
        return {
            PREFIX: {"GET": self.server_metadata, "HEAD": self.server_metadata},
            f"{PREFIX}/health/live": {"GET": self.live, "HEAD": self.live},
            f"{PREFIX}/health/ready": {"GET": self.ready, "HEAD": self.ready},
        }

    def model_routes(self, path: str) -> dict[str, Callable] | None:
        """The methods of a /v2/models/... path, bound to its name and version; None if none."""
        match = MODEL_PATH.fullmatch(path)
        if match is None:
            return None
        bound = functools.partial
        name, version = match["name"], match["version"]
        if match["action"] == "/infer":
            return {"POST": bound(self.infer, name=name, version=version)}
        handler = self.model_ready if match["action"] == "/ready" else self.model_metadata
        return {method: bound(handler, name=name, version=version) for method in ("GET", "HEAD")}

    def model(self) -> dict[str, str]:
        """The model's name and version, as a response names them."""
        return {"model_name": self.model_name, "model_version": self.model_version}

    def server_metadata(self, environ: dict) -> tuple[int, dict[str, Any]]:
        return 200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}

    def live(self, environ: dict) -> tuple[int, dict[str, Any]]:
        # The process answers: live, even when its bundle cannot be served (ready says so).
        return 200, {"live": True}

    def ready(self, environ: dict) -> tuple[int, dict[str, Any]]:
        self._ready_handler()
        return 200, {"ready": True}

    def model_ready(self, environ: dict, name: str, version: str | None) -> tuple[int, dict]:
        self._model_handler(name, version)
        return 200, {"name": self.model_name, "ready": True}

    def model_metadata(self, environ: dict, name: str, version: str | None) -> tuple[int, dict]:
        contract = self._model_handler(name, version).predictor.contract
        return 200, {
            "name": self.model_name,
            "versions": [self.model_version] if self.model_version else [],
            "platform": PLATFORM,
            "inputs": [
                {"name": INPUT_NAME, "datatype": DATATYPE, "shape": [-1, *contract.sample_shape]}
            ],
            "outputs": [
                {
                    "name": output_name(contract),
                    "datatype": DATATYPE,
                    "shape": [-1, len(contract.labels)],
                }
            ],
        }

    def infer(self, environ: dict, name: str, version: str | None) -> tuple[int, RawResponse]:
        handler = self._model_handler(name, version)
        encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity"):
            raise HTTPError(
                415, f"Content-Encoding {encoding[:40]!r} is not supported", "an uncompressed body"
            )
        header_length = self._header_length(environ)
        limit = handler.body_limits.json_bytes
        length = declared_length(environ, limit)
        if length == 0:
            raise HTTPError(400, "the request body is empty", REQUEST_EXPECTED)
        # Reserve what the body can hold at least before reading it, as /api/predict/ does.
        sample_bytes = handler.sample_bytes
        per_sample = sample_bytes if header_length is not None else sample_bytes // 2
        reserved = min(max(1, (length or 0) // per_sample), handler.limits.max_batch)
        admission = handler.admission
        if not admission.try_admit(reserved):
            raise handler.shed(f"{admission.inflight} samples are being predicted")
        try:
            request = self._read_request(handler, environ, length, limit, header_length)
            admission.adjust(reserved, len(request.batch))
            reserved = len(request.batch)
            outputs = handler.outputs(request.batch)
        except InputError as error:
            raise HTTPError(400, str(error), expected_shape(handler.predictor.contract)) from None
        finally:
            admission.release(reserved)
        payload, json_length = response_body(
            request, outputs, handler.predictor.contract, self.model()
        )
        if json_length is None:
            return 200, RawResponse(payload)
        return 200, RawResponse(payload, FLOAT32_TYPE, ((HEADER_LENGTH_NAME, str(json_length)),))

    def _read_request(self, handler, environ, length, limit, header_length):
        json_bytes = header_length if header_length is not None else length
        # A large JSON part is parsed only while no other is: the same slot as /api/predict/.
        large = json_bytes is None or json_bytes > LARGE_BODY_BYTES
        if large and not handler.large_parses.try_enter():
            raise handler.shed("another large JSON body is being parsed")
        try:
            body = read_body(environ, length, limit)
            contract = handler.predictor.contract
            request = parse_request(
                body, header_length, contract, handler.limits, handler.body_limits
            )
            del body
            # Shape and finiteness of every sample, before the first inference.
            return dataclasses.replace(request, batch=handler.predictor.as_batch(request.batch))
        finally:
            if large:
                handler.large_parses.leave()

    @staticmethod
    def _header_length(environ: dict) -> int | None:
        raw = environ.get(HEADER_LENGTH_KEY)
        if raw is None:
            return None
        header_length = parse_count(raw.strip())
        if header_length is None:
            raise HTTPError(
                400,
                f"{HEADER_LENGTH_NAME} {raw[:40]!r} is not a number",
                "the length in bytes of the JSON that starts the body",
            )
        return header_length

    def _ready_handler(self) -> PredictHandler:
        if self.handler is None:
            raise HTTPError(
                503,
                f"predictor not ready: {self.not_ready_reason}",
                "a ready model (see /api/health/)",
            )
        return self.handler

    def _model_handler(self, name: str, version: str | None) -> PredictHandler:
        handler = self._ready_handler()
        if name != self.model_name:
            raise HTTPError(404, f"unknown model {name[:80]!r}", f"the model {self.model_name!r}")
        if version is not None and version != self.model_version:
            raise HTTPError(
                404,
                f"model {name!r} has no version {version[:80]!r}",
                f"version {self.model_version!r}",
            )
        return handler
