"""The most memory-hungry requests the service accepts, sent at its full concurrency.

Typical requests say little about the peak: a JSON body of nested empty lists costs ~45 bytes
of Python objects per byte parsed, so a body under the byte limit can still need hundreds of
MB. Each kind below is sent `concurrency` times at once; what the kernel counts while they are
in flight is the service's worst case. Any answer but a crash is acceptable: 200, a 4xx that
refuses the body, or a 503 that sheds load (with Retry-After).
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import orjson
import requests

from pipeline.render_service import ServiceLimits

JSON_TYPE = "application/json"
FLOAT32_TYPE = "application/octet-stream"
# Answers that mean the service refused or shed the request and lived: not failures.
ACCEPTABLE_STATUSES = {200, 400, 413, 415, 503}


@dataclass(frozen=True)
class HostileRequest:
    kind: str
    content_type: str
    body: bytes


def _json_of_samples(samples: np.ndarray) -> bytes:
    return orjson.dumps({"instances": samples.tolist()})


def _filled_to(limit: int, head: bytes, item: bytes, tail: bytes) -> bytes:
    """head + item,item,...,item + tail, as many items as fit in `limit` bytes."""
    count = max(1, (limit - len(head) - len(tail) + 1) // (len(item) + 1))
    return head + b",".join([item] * count) + tail


def hostile_requests(samples: np.ndarray, limits: ServiceLimits) -> list[HostileRequest]:
    """The mix: largest batch and largest body in each format, and bodies that expand."""
    sample = samples[:1].astype("<f4")
    batch = np.repeat(sample, limits.max_batch, axis=0)
    at_limit = limits.max_body_bytes // sample.nbytes
    one_json = len(_json_of_samples(sample)) + 1
    json_batch = max(1, min(limits.max_batch, limits.max_body_bytes // one_json))
    head, tail = b'{"instances":[', b"]}"
    return [
        HostileRequest("float32, largest batch", FLOAT32_TYPE, batch.tobytes()),
        HostileRequest(
            "float32, largest body",
            FLOAT32_TYPE,
            np.repeat(sample, max(1, at_limit), axis=0).tobytes(),
        ),
        HostileRequest(
            "JSON, largest batch",
            JSON_TYPE,
            _json_of_samples(np.repeat(sample, json_batch, axis=0)),
        ),
        HostileRequest(
            "JSON numbers, largest body",
            JSON_TYPE,
            _filled_to(limits.max_body_bytes, head, b"1.5", tail),
        ),
        HostileRequest(
            "JSON empty lists, largest body",
            JSON_TYPE,
            _filled_to(limits.max_body_bytes, head, b"[[]]", tail),
        ),
    ]


@dataclass
class HostileResult:
    """For each kind: its body size and the answers it got; errors are crashes, not refusals."""

    kinds: dict[str, dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def drive_hostile(
    url: str,
    mix: list[HostileRequest],
    *,
    concurrency: int,
    timeout_seconds: float,
    on_kind_done=None,
) -> HostileResult:
    """Send each kind `concurrency` times at once; `on_kind_done(kind)` after each kind."""
    result = HostileResult()
    lock = threading.Lock()

    def send(request: HostileRequest) -> str:
        try:
            response = requests.post(
                f"{url}/api/predict/",
                data=request.body,
                headers={"Content-Type": request.content_type},
                timeout=timeout_seconds,
            )
        except requests.Timeout:
            return "timeout"
        except requests.RequestException as error:
            with lock:
                result.errors.append(f"{request.kind}: {type(error).__name__}: {error}"[:200])
            return "connection error"
        if response.status_code not in ACCEPTABLE_STATUSES:
            with lock:
                result.errors.append(f"{request.kind}: HTTP {response.status_code}")
        return str(response.status_code)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for request in mix:
            started = time.perf_counter()
            answers = list(pool.map(send, [request] * concurrency))
            result.kinds[request.kind] = {
                "body_bytes": len(request.body),
                "answers": {answer: answers.count(answer) for answer in sorted(set(answers))},
                "seconds": round(time.perf_counter() - started, 2),
            }
            print(f"worst case: {request.kind} x{concurrency}: {answers}", flush=True)
            if on_kind_done is not None:
                on_kind_done(request.kind)
    return result
