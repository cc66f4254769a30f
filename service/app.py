"""The WSGI service: /api/health/, /api/predict/ and /api/metadata/ on the lite runtime, the
Open Inference Protocol's /v2 routes on the same predict path (service/inference_protocol.py)
and /openapi.json, the OpenAPI document of them all (service/openapi.py).

`create_app(...)` is a pure factory; the module-level `app` reads the environment:

    MODEL_DIR           the bundle to serve (default: release/, relative to the repo root)
    LFS_PULL_LOG        the build's record of its `git lfs pull` (default: build/lfs-pull.log,
                        as render.yaml's build writes it): why a model is still an LFS pointer
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
                        Retry-After (an idle worker always admits one request)
    SHED_HOLD_MS        how long a refused prediction is held, unread and at no CPU, before
                        its 503 (default: 1000): a client that ignores Retry-After then costs
                        at most one refusal a second, so a flood cannot starve health checks
    LARGE_PARSES        JSON bodies over 1 MiB parsed at once per worker (default: 1); the
                        next one is answered 503 with Retry-After
    BATCH_MAX_WAIT_MS   how long a batch waits for more samples while concurrent requests are
                        coming (default: 2): a batch-4 invoke costs some 3 ms of CPU, so a wait
                        of 2 ms at most fills it without adding more than one invoke's latency
    BATCH_IDLE_WAIT_MS  the wait when no other request is seen (default: 0): a lone client's
                        request runs at once, as fast as without batching
    BATCH_PAD_FRACTION  a short group is padded to the batched model's size when it fills at
                        least this fraction of it (default: 0.75): a batch-N invoke costs about
                        0.7x N batch-1 invokes (benchmarks/batch_sweep.py on the demo)

A bad number stops the worker with the variable's name; a bad bundle does not stop anything:
the service starts, /api/health/ answers 503 with the reason and /api/predict/ answers 503.
PORT and WEB_CONCURRENCY are read by render.yaml's gunicorn command, not here.

render.yaml runs gunicorn's gevent worker: a slow or idle client holds a greenlet, not a
thread, so /api/health/ answers while clients dribble bodies. Samples of concurrent requests
share batch-N invokes (service/batching.py), which yield to the event loop before each
invoke, and a large JSON body is parsed a sample at a time, so health never waits for more
than one invoke or one sample's parse (service/predict.py). gunicorn reads
`service.app:app` in each worker after fork (no --preload), so every worker builds its own
interpreter, from the model's bytes in memory (the file on disk may change under it).
"""

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson

from service.body import finish_unread_body, parse_count
from service.bundle import BundleError
from service.errors import HTTPError, loggable
from service.inference_protocol import InferenceProtocol, RawResponse, error_body
from service.lfs_pull import DEFAULT_RECORD, diagnosed
from service.limits import Admission, Limits, env_number
from service.openapi import openapi_document
from service.predict import PredictHandler
from service.predictor import Predictor

__all__ = ["HTTPError", "create_app", "parse_count"]

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("service")
# /api/health/'s reason when loading the bundle failed on a bug of ours; the log has the trace.
INTERNAL_ERROR = "the service failed to load the bundle: an internal error; please report it"


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
        limits: Limits,
        default_top_k: int,
        lfs_pull_log: Path | None = None,
    ) -> None:
        self.limits, self.default_top_k = limits, default_top_k
        self.started = time.monotonic()
        self.predictor: Predictor | None = None
        self.not_ready_reason, self.not_ready_fault = "", ""
        try:
            self.predictor = Predictor(
                model_dir, num_threads=num_threads, pad_fraction=limits.batch_pad_fraction
            )
        except BundleError as error:
            self.not_ready_fault, self.not_ready_reason = diagnosed(error, lfs_pull_log)
            log.error("predictor not ready: %s", loggable(self.not_ready_reason, 2000))
        except Exception:  # our own bug, not the bundle's: still boot, say so, keep the trace
            self.not_ready_fault, self.not_ready_reason = "internal_error", INTERNAL_ERROR
            log.exception("predictor not ready: internal error")
        self.admission = Admission(limits)
        self.predict_handler = (
            PredictHandler(self.predictor, limits, self.admission, default_top_k)
            if self.predictor
            else None
        )
        self.body_limits = self.predict_handler.body_limits if self.predict_handler else None
        self.protocol = InferenceProtocol(self.predict_handler, self.not_ready_reason)
        routes = {
            "/api/health": {"GET": self.health, "HEAD": self.health},
            "/api/predict": {"POST": self.predict},
            "/api/metadata": {"GET": self.metadata, "HEAD": self.metadata},
        }
        # Both spellings answer directly: Render counts a redirect as healthy.
        self.routes = routes | {f"{path}/": methods for path, methods in routes.items()}
        self.routes |= self.protocol.routes()
        self.routes["/openapi.json"] = {"GET": self.openapi, "HEAD": self.openapi}
        # Built once from the live contract and limits: the document is what is enforced.
        self.openapi_payload = orjson.dumps(
            openapi_document(self.predictor, limits, self.body_limits, default_top_k, self.protocol)
        )

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        headers: list[tuple[str, str]] = []
        try:
            methods = self.routes.get(path) or self.protocol.model_routes(path)
            if methods is None:
                raise HTTPError(
                    404,
                    f"no such path {path[:200]!r}",
                    "one of /api/health/, /api/predict/, /api/metadata/, /openapi.json, "
                    "/v2/health/ready, /v2/models/{name}[/infer] (see /openapi.json)",
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
            body = error_body(path, refusal.error, refusal.expected)
            headers.extend(refusal.headers)
        except Exception:  # a bug of ours: say so without a traceback, keep serving
            log.error(
                "unhandled error on %s %s\n%s",
                loggable(method),
                loggable(path),
                traceback.format_exc(),
            )
            status, body = 500, error_body(path, "internal error; see the service log", "")
        if not isinstance(body, RawResponse):
            body = RawResponse(orjson.dumps(body))
        payload = body.payload
        headers += [*body.headers, ("Content-Type", body.content_type)]
        headers.append(("Content-Length", str(len(payload))))
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
                "fault": self.not_ready_fault,
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
            "model_name": self.protocol.model_name,
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
        self._ready()
        return self.predict_handler(environ)

    def openapi(self, environ: dict) -> tuple[int, RawResponse]:
        return 200, RawResponse(self.openapi_payload)


def create_app(
    model_dir: Path,
    *,
    num_threads: int = 1,
    limits: Limits | None = None,
    default_top_k: int = 3,
    lfs_pull_log: Path | None = None,
    **limit_overrides: Any,
) -> ServiceApp:
    """The service for the bundle in `model_dir`; it starts even if the bundle is unusable.

    `limit_overrides` (max_batch=..., max_body_bytes=..., cpu_share=...) adjust `limits`.
    """
    limits = limits or Limits()
    if limit_overrides:
        limits = Limits(**{**limits.__dict__, **limit_overrides})
    return ServiceApp(Path(model_dir), num_threads, limits, default_top_k, lfs_pull_log)


def _app_from_environment() -> ServiceApp:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    model_dir = Path(os.environ.get("MODEL_DIR") or "release")
    lfs_pull_log = Path(os.environ.get("LFS_PULL_LOG") or DEFAULT_RECORD)
    return create_app(
        model_dir if model_dir.is_absolute() else REPO_ROOT / model_dir,
        num_threads=env_number("TFLITE_NUM_THREADS", 1),
        limits=Limits.from_environment(),
        default_top_k=env_number("DEFAULT_TOP_K", 3),
        lfs_pull_log=REPO_ROOT / lfs_pull_log,  # an absolute path stays as it is
    )


def __getattr__(name: str) -> Any:
    # `service.app:app` is built on first access (in each gunicorn worker, after fork), so
    # importing this module for create_app() never loads a model.
    if name == "app":
        globals()["app"] = _app_from_environment()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
