"""The most memory-hungry requests the service accepts, sent at its full concurrency.

Typical requests say little about the peak: a JSON body of nested empty lists costs ~45 bytes
of Python objects per byte parsed, so a body under the byte limit can still need hundreds of
MB. Each kind below starts at the largest size the service's limits allow (MAX_BATCH,
MAX_BODY_BYTES from render.yaml or the service's defaults) and is sent `concurrency` times at
once. A service may refuse some formats below those limits (a byte limit per format): while
every answer is 413, the body shrinks and the burst is sent again, so what is measured is the
largest body the service really takes in. Any answer but a crash is acceptable: 200, a 4xx
that refuses the body, or a 503 that sheds load (with Retry-After).
"""

import http.client
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import orjson
import requests

from pipeline.gate.render_service import ServiceLimits
from pipeline.params import GateParams

JSON_TYPE = "application/json"
FLOAT32_TYPE = "application/octet-stream"
# Answers that mean the service refused or shed the request and lived: not failures.
ACCEPTABLE_STATUSES = {200, 400, 413, 415, 503}
# A request that got no answer in time is named as such ("timed out"), never a refusal.
REFUSALS = {"413", "connection closed"}
TIMED_OUT = "timed out"
UPLOAD_STALL_SECONDS = 5.0  # a body the service stopped reading
# A refusal from Content-Length comes at once (ms, or a CFS period or two under a quota).
REFUSAL_PROBE_SECONDS = 1.0
SHRINK_FACTOR = 0.7
MAX_BURSTS_PER_KIND = 10
SMALLEST_BODY_BYTES = 1024


@dataclass(frozen=True)
class HostileKind:
    """One kind of request: its content type and its body at (at most) a given size."""

    kind: str
    content_type: str
    body_of_size: Callable[[int], bytes]
    largest_bytes: int


def worst_case_concurrency(limits: ServiceLimits, settings: GateParams) -> int:
    """The service's full concurrency, at least gate.concurrency, at most the cap in params
    (an async worker takes 1000 connections; 1000 bodies of 8 MiB would swamp the client)."""
    wanted = max(limits.concurrency, settings.concurrency)
    return min(settings.worst_case_max_concurrency, wanted)


def _filled_to(limit: int, head: bytes, item: bytes, tail: bytes) -> bytes:
    """head + item,item,...,item + tail, as many items as fit in `limit` bytes."""
    count = max(1, (limit - len(head) - len(tail) + 1) // (len(item) + 1))
    return head + b",".join([item] * count) + tail


def hostile_kinds(samples: np.ndarray, limits: ServiceLimits) -> list[HostileKind]:
    """The mix: largest batch and largest body in each format, and bodies that expand."""
    sample = samples[:1].astype("<f4")
    one_json = orjson.dumps(sample[0].tolist())
    head, tail = b'{"instances":[', b"]}"

    def float32_body(size: int) -> bytes:
        return np.repeat(sample, max(1, size // sample.nbytes), axis=0).tobytes()

    def json_samples_body(size: int) -> bytes:
        return _filled_to(size, head, one_json, tail)

    def numbers_body(size: int) -> bytes:
        return _filled_to(size, head, b"1.5", tail)

    def empty_lists_body(size: int) -> bytes:
        return _filled_to(size, head, b"[[]]", tail)

    json_batch_bytes = len(head) + len(tail) + limits.max_batch * (len(one_json) + 1)
    return [
        HostileKind(
            "float32, largest batch",
            FLOAT32_TYPE,
            float32_body,
            limits.max_batch * sample.nbytes,
        ),
        HostileKind("float32, largest body", FLOAT32_TYPE, float32_body, limits.max_body_bytes),
        HostileKind(
            "JSON, largest batch",
            JSON_TYPE,
            json_samples_body,
            min(json_batch_bytes, limits.max_body_bytes),
        ),
        HostileKind("JSON numbers, largest body", JSON_TYPE, numbers_body, limits.max_body_bytes),
        HostileKind(
            "JSON empty lists, largest body", JSON_TYPE, empty_lists_body, limits.max_body_bytes
        ),
    ]


@dataclass
class HostileResult:
    """For each kind: the body size sent and the answers it got; errors are crashes only."""

    kinds: dict[str, dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def refused_unread(url: str, content_type: str, length: int, wait_seconds: float) -> bool:
    """Whether the service answers 413 to this Content-Length before a byte of body is sent.

    A service that checks the declared length refuses at once; one that means to read the
    body waits for it, and the wait is the answer. Asking this way costs no upload, where a
    refused upload would stall until the client gave up.
    """
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=wait_seconds)
    try:
        connection.putrequest("POST", "/api/predict/")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        try:
            return connection.getresponse().status == 413
        except TimeoutError:
            return False
    except OSError:
        return False
    finally:
        connection.close()


def drive_hostile(
    url: str, kinds: list[HostileKind], *, concurrency: int, timeout_seconds: float
) -> HostileResult:
    """Send each kind `concurrency` times at once, shrinking it while the service refuses it.

    A connection the service closes, or an upload it stops reading, is a refusal, not a
    crash: a crash shows in the kernel's OOM kills and in the workers replaced. What counts
    as an error here is an answer no healthy service gives (a 500, a 502).
    """
    result = HostileResult()
    lock = threading.Lock()

    def send(kind: HostileKind, body: bytes) -> str:
        try:
            response = requests.post(
                f"{url}/api/predict/",
                data=body,
                headers={"Content-Type": kind.content_type},
                # Connect timeout also bounds a stalled upload; read timeout the answer.
                timeout=(UPLOAD_STALL_SECONDS, timeout_seconds),
            )
        except requests.Timeout:
            return TIMED_OUT
        except requests.ConnectionError as error:
            return TIMED_OUT if "timed out" in str(error) else "connection closed"
        if response.status_code not in ACCEPTABLE_STATUSES:
            with lock:
                result.errors.append(f"{kind.kind}: HTTP {response.status_code}")
        return str(response.status_code)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for kind in kinds:
            size, bursts = kind.largest_bytes, 0
            started = time.perf_counter()
            while size > SMALLEST_BODY_BYTES and refused_unread(
                url, kind.content_type, len(kind.body_of_size(size)), REFUSAL_PROBE_SECONDS
            ):
                size = int(size * SHRINK_FACTOR)
            while True:
                body = kind.body_of_size(size)
                answers = list(pool.map(send, [kind] * concurrency, [body] * concurrency))
                bursts += 1
                # Refused after reading (too many samples, say): smaller, until it is taken.
                refused = "413" in answers and set(answers) <= REFUSALS
                if not refused or bursts == MAX_BURSTS_PER_KIND or size <= SMALLEST_BODY_BYTES:
                    break
                size = int(size * SHRINK_FACTOR)
            result.kinds[kind.kind] = {
                "body_bytes": len(body),
                "bursts": bursts,
                "answers": {answer: answers.count(answer) for answer in sorted(set(answers))},
                "seconds": round(time.perf_counter() - started, 2),
            }
            print(
                f"worst case: {kind.kind}, {len(body)} bytes x{concurrency}: {answers}",
                flush=True,
            )
    return result
