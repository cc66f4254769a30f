"""The WSGI service: /api/health/, /api/predict/ and /api/metadata/ on the lite runtime.

`create_app(...)` is a pure factory; the module-level `app` reads the environment:

    MODEL_DIR           the bundle to serve (default: release/, relative to the repo root)
    TFLITE_NUM_THREADS  interpreter threads per worker (default: 1)
    MAX_BODY_BYTES      largest request body accepted, refused unread above it (default: 8 MiB)
    MAX_BATCH           most samples in one request (default: 64)
    DEFAULT_TOP_K       labels listed per answer when ?top_k= is absent (default: 3)
    LITE_RUNTIME        ai-edge-litert or tflite-runtime (default: the first one installed)

A bad number stops the worker with the variable's name; a bad bundle does not stop anything:
the service starts, /api/health/ answers 503 with the reason and /api/predict/ answers 503.
PORT and WEB_CONCURRENCY are read by render.yaml's gunicorn command, not here.

gunicorn reads `service.app:app` in each worker after fork (no --preload), so every worker
builds its own interpreter; the predictor serialises invoke() under its own lock.
"""

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson

from service.bundle import BundleError
from service.predictor import InputError, Predictor

REPO_ROOT = Path(__file__).resolve().parent.parent
JSON_TYPE = "application/json"
FLOAT32_TYPE = "application/octet-stream"
log = logging.getLogger("service")


class HTTPError(Exception):
    """A request the service refuses: status, the problem, and what it expects instead."""

    def __init__(self, status: int, error: str, expected: str = "", headers=()) -> None:
        super().__init__(error)
        self.status, self.error, self.expected, self.headers = status, error, expected, headers


def parse_count(raw: str) -> int | None:
    """`raw` as a non-negative integer if it is at most 18 plain ASCII digits, else None."""
    # int() raises on what str.isdigit() alone lets through: superscripts such as "²" and
    # strings over 4300 digits.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def worker_memory_mb() -> float:
    """This process's resident memory, read from /proc (no psutil in the service)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource  # no /proc (macOS): peak RSS is the closest figure available

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class ServiceApp:
    """The WSGI callable: dispatch on path and method, JSON in and out, one log line each."""

    def __init__(
        self,
        model_dir: Path,
        num_threads: int,
        max_body_bytes: int,
        max_batch: int,
        default_top_k: int,
    ) -> None:
        self.max_body_bytes, self.max_batch, self.default_top_k = (
            max_body_bytes,
            max_batch,
            default_top_k,
        )
        self.started = time.monotonic()
        self.predictor: Predictor | None = None
        self.not_ready_reason = ""
        try:
            self.predictor = Predictor(model_dir, num_threads=num_threads)
        except BundleError as error:
            self.not_ready_reason = str(error)
            log.error("predictor not ready: %s", error)
        except Exception as error:  # a manifest of the wrong shape: still boot and say why
            self.not_ready_reason = (
                f"the bundle in {model_dir} cannot be loaded ({type(error).__name__}: {error}); "
                "rebuild it with this version of the pipeline"
            )
            log.error("predictor not ready: %s\n%s", error, traceback.format_exc())
        routes = {
            "/api/health": {"GET": self.health, "HEAD": self.health},
            "/api/predict": {"POST": self.predict},
            "/api/metadata": {"GET": self.metadata, "HEAD": self.metadata},
        }
        # Both spellings answer directly: Render counts a redirect as healthy.
        self.routes = routes | {f"{path}/": methods for path, methods in routes.items()}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        headers: list[tuple[str, str]] = []
        try:
            methods = self.routes.get(path)
            if methods is None:
                raise HTTPError(
                    404,
                    f"no such path {path!r}",
                    "one of /api/health/, /api/predict/, /api/metadata/",
                )
            handler = methods.get(method)
            if handler is None:
                allowed = ", ".join(methods)
                raise HTTPError(
                    405,
                    f"method {method} is not allowed on {path}",
                    f"one of {allowed}",
                    headers=[("Allow", allowed)],
                )
            status, body = handler(environ)
        except HTTPError as refusal:
            status = refusal.status
            body = {"error": refusal.error, "expected": refusal.expected}
            headers.extend(refusal.headers)
        except Exception:  # a bug of ours: say so without a traceback, keep serving
            log.error("unhandled error on %s %s\n%s", method, path, traceback.format_exc())
            status, body = 500, {"error": "internal error; see the service log", "expected": ""}
        payload = orjson.dumps(body)
        headers += [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        log.info("%s %s %d %.2fms", method, path, status, (time.perf_counter() - started) * 1000)
        return [b"" if method == "HEAD" else payload]

    def _ready(self) -> Predictor:
        if self.predictor is None:
            raise HTTPError(
                503,
                f"predictor not ready: {self.not_ready_reason}",
                "a service whose /api/health/ answers 200",
            )
        return self.predictor

    def health(self, environ: dict) -> tuple[int, dict[str, Any]]:
        common = {
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "worker_pid": os.getpid(),
            "worker_memory_mb": worker_memory_mb(),
        }
        if self.predictor is None:
            return 503, {
                "status": "unavailable",
                "predictor": "not ready",
                "reason": self.not_ready_reason,
                **common,
            }
        manifest = self.predictor.manifest
        return 200, {
            "status": "ok",
            "predictor": "ready",
            "model_sha256": self.predictor.sha256,
            "model_version": manifest.get("version"),
            "runtime": self.predictor.runtime.name,
            "runtime_version": self.predictor.runtime.version,
            **common,
        }

    def metadata(self, environ: dict) -> tuple[int, dict[str, Any]]:
        predictor = self._ready()
        manifest = predictor.manifest
        return 200, {
            "model_version": manifest.get("version"),
            "model_sha256": predictor.sha256,
            "input": {
                **manifest["input"],
                "json": predictor.contract.describe(),
                "float32": "little-endian float32 bytes, n x "
                + " x ".join(str(d) for d in predictor.contract.sample_shape),
            },
            "labels": list(predictor.contract.labels),
            "quantization": manifest.get("quantization"),
            "preprocessing": manifest["preprocessing"].get("kind"),
            "verdicts": manifest.get("verdicts"),
        }

    def predict(self, environ: dict) -> tuple[int, dict[str, Any]]:
        predictor = self._ready()
        top_k = self._top_k(environ, len(predictor.contract.labels))
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in (JSON_TYPE, FLOAT32_TYPE):
            raise HTTPError(
                415,
                f"content type {content_type or 'none'!r} is not supported",
                f"{JSON_TYPE} or {FLOAT32_TYPE}",
            )
        body = self._read_body(environ)
        if content_type == JSON_TYPE:
            values = self._json_instances(body)
        else:
            values = self._float32_instances(body, predictor)
        try:
            batch = predictor.as_batch(values)
        except InputError as error:
            raise HTTPError(400, str(error), predictor.contract.describe()) from None
        if len(batch) > self.max_batch:
            raise HTTPError(
                413,
                f"{len(batch)} samples in one request",
                f"at most {self.max_batch} samples per request",
            )
        return 200, {
            "predictions": predictor.predict(batch, top_k=top_k),
            "model_sha256": predictor.sha256,
            "model_version": predictor.manifest.get("version"),
        }

    def _top_k(self, environ: dict, label_count: int) -> int:
        asked = parse_qs(environ.get("QUERY_STRING", "")).get("top_k")
        if asked is None:  # a default above this model's label count is not the client's fault
            return min(self.default_top_k, label_count)
        raw = asked[-1]
        top_k = parse_count(raw)
        if top_k is None or not 1 <= top_k <= label_count:
            raise HTTPError(
                400, f"top_k={raw!r} is not usable", f"an integer from 1 to {label_count}"
            )
        return top_k

    def _read_body(self, environ: dict) -> bytes:
        """The body, refused from its declared length before reading when it is too large."""
        declared = environ.get("CONTENT_LENGTH") or ""
        limit = f"a body of at most {self.max_body_bytes} bytes"
        if declared:
            length = parse_count(declared)
            if length is None:
                raise HTTPError(400, f"Content-Length {declared!r} is not a number", limit)
            if length > self.max_body_bytes:
                raise HTTPError(413, f"body of {length} bytes is too large", limit)
            body = environ["wsgi.input"].read(length)
        else:  # chunked or undeclared: read one byte past the limit to know it was exceeded
            body = environ["wsgi.input"].read(self.max_body_bytes + 1)
            if len(body) > self.max_body_bytes:
                raise HTTPError(413, "body is too large", limit)
        if not body:
            raise HTTPError(
                400, "the request body is empty", 'JSON {"instances": [...]} or raw float32 bytes'
            )
        return body

    def _json_instances(self, body: bytes) -> np.ndarray:
        expected = 'a JSON object {"instances": [...]} with nested lists of numbers'
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise HTTPError(400, f"invalid JSON: {error}", expected) from None
        if not isinstance(document, dict) or "instances" not in document:
            raise HTTPError(400, "the JSON body has no 'instances' key", expected)
        try:
            values = np.asarray(document["instances"])
        except (ValueError, TypeError):
            raise HTTPError(
                400, "'instances' is ragged: rows of different lengths", expected
            ) from None
        if values.dtype.kind not in "iuf":  # strings, booleans, objects, nulls
            raise HTTPError(400, "'instances' holds values that are not numbers", expected)
        return values

    def _float32_instances(self, body: bytes, predictor: Predictor) -> np.ndarray:
        contract = predictor.contract
        if len(body) % contract.sample_bytes:
            dims = " x ".join(str(d) for d in contract.sample_shape)
            raise HTTPError(
                400,
                f"float32 body of {len(body)} bytes is not whole samples",
                f"a multiple of {contract.sample_bytes} bytes ({dims} little-endian float32"
                " per sample)",
            )
        return np.frombuffer(body, dtype="<f4").reshape(-1, *contract.sample_shape)


def create_app(
    model_dir: Path,
    *,
    num_threads: int = 1,
    max_body_bytes: int = 8 << 20,
    max_batch: int = 64,
    default_top_k: int = 3,
) -> ServiceApp:
    """The service for the bundle in `model_dir`; it starts even if the bundle is unusable."""
    return ServiceApp(Path(model_dir), num_threads, max_body_bytes, max_batch, default_top_k)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    value = parse_count(raw)
    if not value:
        raise SystemExit(f"{name}={raw!r} must be a positive integer")
    return value


def _app_from_environment() -> ServiceApp:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    model_dir = Path(os.environ.get("MODEL_DIR") or "release")
    return create_app(
        model_dir if model_dir.is_absolute() else REPO_ROOT / model_dir,
        num_threads=_env_int("TFLITE_NUM_THREADS", 1),
        max_body_bytes=_env_int("MAX_BODY_BYTES", 8 << 20),
        max_batch=_env_int("MAX_BATCH", 64),
        default_top_k=_env_int("DEFAULT_TOP_K", 3),
    )


def __getattr__(name: str) -> Any:
    # `service.app:app` is built on first access (in each gunicorn worker, after fork), so
    # importing this module for create_app() never loads a model.
    if name == "app":
        globals()["app"] = _app_from_environment()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
