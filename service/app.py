"""The WSGI service: /api/health/, /api/predict/ and /api/metadata/ on the lite runtime.

`create_app(...)` is a pure factory; the module-level `app` reads the environment:

    MODEL_DIR           the bundle to serve (default: release/, relative to the repo root)
    TFLITE_NUM_THREADS  interpreter threads per worker (default: 1)
    MAX_BATCH           most samples in one request (default: 64); the body limits per format
                        follow from it and the contract's sample size: float32
                        MAX_BATCH x sample_bytes, JSON MAX_BATCH x sample_size x 26 bytes + 4 KiB
    MAX_BODY_BYTES      a cap on both derived body limits (default: 32 MiB)
    DEFAULT_TOP_K       labels listed per answer when ?top_k= is absent (default: 3)
    LITE_RUNTIME        ai-edge-litert or tflite-runtime (default: the first one installed)
    CPU_SHARE           the plan's CPU share (default: 0.1, Render free)
    SAMPLE_CPU_MS       worker CPU one sample costs, measured by `make bench` (default: 2.0)
    LATENCY_BUDGET_MS   how long an accepted request may wait for the CPU (default: 1000)
                        -> samples in flight per worker: LATENCY_BUDGET_MS x CPU_SHARE /
                        SAMPLE_CPU_MS (50 by default); past it, predictions answer 503 with
                        Retry-After at once (an idle worker always admits one request)
    LARGE_PARSES        JSON bodies over 1 MiB parsed at once per worker (default: 1); the
                        next one is answered 503 with Retry-After

A bad number stops the worker with the variable's name; a bad bundle does not stop anything:
the service starts, /api/health/ answers 503 with the reason and /api/predict/ answers 503.
PORT and WEB_CONCURRENCY are read by render.yaml's gunicorn command, not here.

render.yaml runs gunicorn's gevent worker: a slow or idle client holds a greenlet, not a
thread, so /api/health/ answers while clients dribble bodies. A batch yields to the event
loop between samples, so health never waits for more than one inference. gunicorn reads
`service.app:app` in each worker after fork (no --preload), so every worker builds its own
interpreter, from the model's bytes in memory (the file on disk may change under it).
"""

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson

from service.body import (
    declared_length,
    finish_unread_body,
    float32_instances,
    json_instances,
    parse_count,
    read_body,
    yield_to_other_requests,
)
from service.bundle import BundleError
from service.errors import HTTPError, loggable
from service.limits import (
    LARGE_BODY_BYTES,
    Admission,
    BodyLimits,
    LargeParses,
    Limits,
    env_number,
)
from service.predictor import InputError, Predictor

__all__ = ["HTTPError", "create_app", "parse_count"]

REPO_ROOT = Path(__file__).resolve().parent.parent
JSON_TYPE = "application/json"
FLOAT32_TYPE = "application/octet-stream"
log = logging.getLogger("service")


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
        self, model_dir: Path, num_threads: int, limits: Limits, default_top_k: int
    ) -> None:
        self.limits, self.default_top_k = limits, default_top_k
        self.started = time.monotonic()
        self.predictor: Predictor | None = None
        self.not_ready_reason = ""
        try:
            self.predictor = Predictor(model_dir, num_threads=num_threads)
        except BundleError as error:
            self.not_ready_reason = str(error)
            log.error("predictor not ready: %s", loggable(str(error), 2000))
        except Exception as error:  # a manifest of the wrong shape: still boot and say why
            # The public reason names no path; the log keeps the details.
            self.not_ready_reason = (
                f"the bundle cannot be loaded ({type(error).__name__}); rebuild it with this "
                "version of the pipeline"
            )
            log.error("predictor not ready: %s\n%s", error, traceback.format_exc())
        self.body_limits = (
            BodyLimits.for_contract(self.predictor.contract, limits) if self.predictor else None
        )
        self.sample_bytes = self.predictor.contract.sample_bytes if self.predictor else 0
        self.admission = Admission(limits)
        self.large_parses = LargeParses(limits.large_parses)
        # A gevent lock under the gevent worker (gunicorn patches threading before the app).
        self.inference_slot = threading.Lock()
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
                    f"no such path {path[:200]!r}",
                    "one of /api/health/, /api/predict/, /api/metadata/",
                )
            handler = methods.get(method)
            if handler is None:
                allowed = ", ".join(methods)
                raise HTTPError(
                    405,
                    f"method {method[:20]!r} is not allowed on {path}",
                    f"one of {allowed}",
                    headers=[("Allow", allowed)],
                )
            status, body = handler(environ)
        except HTTPError as refusal:
            finish_unread_body(environ, self.limits.max_body_bytes)
            status = refusal.status
            body = {"error": refusal.error, "expected": refusal.expected}
            headers.extend(refusal.headers)
        except Exception:  # a bug of ours: say so without a traceback, keep serving
            log.error(
                "unhandled error on %s %s\n%s",
                loggable(method),
                loggable(path),
                traceback.format_exc(),
            )
            status, body = 500, {"error": "internal error; see the service log", "expected": ""}
        payload = orjson.dumps(body)
        headers += [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        log.info(
            "%s %s %d %.2fms",
            loggable(method),
            loggable(path),
            status,
            (time.perf_counter() - started) * 1000,
        )
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
            "samples_in_flight": self.admission.inflight,
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
            "limits": {
                "max_batch": self.limits.max_batch,
                "max_json_bytes": self.body_limits.json_bytes,
                "max_float32_bytes": self.body_limits.float32_bytes,
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
            raise self._shed(f"{self.admission.inflight} samples are being predicted")
        try:
            batch = self._read_batch(environ, predictor, is_json, length, limit)
            self.admission.adjust(reserved, len(batch))
            reserved = len(batch)
            outputs = []
            for index in range(len(batch)):
                # Take the inference slot, then let every other ready request run (health
                # checks, parsing) before this sample's invoke(): the others wait parked on
                # the slot, so a health check waits for at most one inference, never a queue.
                # Always yield, even when nothing seems to wait: requests that arrived meanwhile
                # only become visible (parked, counted in flight) once they have run.
                with self.inference_slot:
                    yield_to_other_requests()
                    outputs.extend(predictor.predict(batch[index : index + 1], top_k=top_k))
        except InputError as error:
            raise HTTPError(400, str(error), predictor.contract.describe()) from None
        finally:
            self.admission.release(reserved)
        return 200, {
            "predictions": outputs,
            "model_sha256": predictor.sha256,
            "model_version": predictor.manifest.get("version"),
        }

    def _read_batch(self, environ, predictor, is_json, length, limit) -> np.ndarray:
        large = is_json and (length is None or length > LARGE_BODY_BYTES)
        if large and not self.large_parses.try_enter():
            raise self._shed("another large JSON body is being parsed")
        try:
            body = read_body(environ, length, limit)
            if is_json:
                values = json_instances(body, self.body_limits, predictor.contract.sample_shape)
            else:
                values = float32_instances(body, predictor.contract, self.sample_bytes)
            batch = predictor.as_batch(values)
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

    def _shed(self, why: str) -> HTTPError:
        retry_after = str(self.admission.retry_after_seconds())
        return HTTPError(
            503,
            f"the service is at capacity: {why}",
            f"the same request again after {retry_after} s (Retry-After)",
            # Close rather than read and discard a body that may be megabytes long.
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


def create_app(
    model_dir: Path,
    *,
    num_threads: int = 1,
    limits: Limits | None = None,
    default_top_k: int = 3,
    **limit_overrides: Any,
) -> ServiceApp:
    """The service for the bundle in `model_dir`; it starts even if the bundle is unusable.

    `limit_overrides` (max_batch=..., max_body_bytes=..., cpu_share=...) adjust `limits`.
    """
    limits = limits or Limits()
    if limit_overrides:
        limits = Limits(**{**limits.__dict__, **limit_overrides})
    return ServiceApp(Path(model_dir), num_threads, limits, default_top_k)


def _app_from_environment() -> ServiceApp:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    model_dir = Path(os.environ.get("MODEL_DIR") or "release")
    return create_app(
        model_dir if model_dir.is_absolute() else REPO_ROOT / model_dir,
        num_threads=env_number("TFLITE_NUM_THREADS", 1),
        limits=Limits.from_environment(),
        default_top_k=env_number("DEFAULT_TOP_K", 3),
    )


def __getattr__(name: str) -> Any:
    # `service.app:app` is built on first access (in each gunicorn worker, after fork), so
    # importing this module for create_app() never loads a model.
    if name == "app":
        globals()["app"] = _app_from_environment()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
