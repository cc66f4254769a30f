"""How much a request may ask of a worker: body sizes per format, admission, concurrent parses.

Every bound comes from the environment (documented in service/app.py) and the model's
contract, never from the byte count alone: a JSON body is refused by its structure before
it is parsed when it cannot be a batch of at most MAX_BATCH samples of the contract's shape.
"""

import math
import os
import threading
from dataclasses import dataclass

from service.predictor import Contract

# Longest text one float32 value needs in JSON as clients write it: sign, 17 significant
# digits, point, exponent ("-1.2345678901234567e-05") and a separator, rounded up.
JSON_BYTES_PER_NUMBER = 26
# Whitespace and brackets around each sample and the {"instances": } wrapper.
JSON_SLACK_BYTES = 4096
# A JSON body above this size is parsed only while no other large body is being parsed.
LARGE_BODY_BYTES = 1 << 20
# Strings and objects a request may hold: the wrapper object, its keys, nothing inside.
MAX_JSON_OBJECTS = 4
MAX_JSON_STRINGS = 16


def env_number(name: str, default: float, kind: type = int, zero_allowed: bool = False):
    """A positive number (or 0 if `zero_allowed`) from the environment, its default when
    unset; exits naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    too_small = value < 0 if zero_allowed else not value > 0
    if too_small or value != value or value == float("inf"):  # also NaN and infinity
        kind_name = "integer" if kind is int else "number"
        sign = "non-negative" if zero_allowed else "positive"
        raise SystemExit(f"{name}={raw!r} must be a {sign} {kind_name}")
    return value


@dataclass(frozen=True)
class Limits:
    """The service's request limits, from the environment's documented defaults."""

    max_body_bytes: int = 32 << 20
    max_batch: int = 64
    cpu_share: float = 0.1
    sample_cpu_ms: float = 2.0
    latency_budget_ms: float = 1000.0
    large_parses: int = 1
    batch_max_wait_ms: float = 2.0
    batch_idle_wait_ms: float = 0.0
    batch_pad_fraction: float = 0.75
    shed_hold_ms: float = 1000.0

    @classmethod
    def from_environment(cls) -> "Limits":
        """The limits service/app.py documents, each from its variable or its default."""
        defaults = cls()
        return cls(
            max_body_bytes=env_number("MAX_BODY_BYTES", defaults.max_body_bytes),
            max_batch=env_number("MAX_BATCH", defaults.max_batch),
            cpu_share=env_number("CPU_SHARE", defaults.cpu_share, float),
            sample_cpu_ms=env_number("SAMPLE_CPU_MS", defaults.sample_cpu_ms, float),
            latency_budget_ms=env_number("LATENCY_BUDGET_MS", defaults.latency_budget_ms, float),
            large_parses=env_number("LARGE_PARSES", defaults.large_parses),
            batch_max_wait_ms=env_number(
                "BATCH_MAX_WAIT_MS", defaults.batch_max_wait_ms, float, zero_allowed=True
            ),
            batch_idle_wait_ms=env_number(
                "BATCH_IDLE_WAIT_MS", defaults.batch_idle_wait_ms, float, zero_allowed=True
            ),
            batch_pad_fraction=env_number("BATCH_PAD_FRACTION", defaults.batch_pad_fraction, float),
            shed_hold_ms=env_number(
                "SHED_HOLD_MS", defaults.shed_hold_ms, float, zero_allowed=True
            ),
        )

    @property
    def inflight_samples(self) -> int:
        """Samples admitted at once: what the plan's CPU clears within the latency budget."""
        return max(1, math.floor(self.latency_budget_ms * self.cpu_share / self.sample_cpu_ms))


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per format, derived from MAX_BATCH and the contract's sample size."""

    float32_bytes: int
    json_bytes: int
    max_brackets: int
    max_commas: int

    @classmethod
    def for_contract(cls, contract: Contract, limits: Limits) -> "BodyLimits":
        batch = limits.max_batch
        # One "[" per list: the batch, each sample, and each list nested inside a sample.
        lists_per_sample = (
            sum(
                math.prod(contract.sample_shape[:depth])
                for depth in range(1, len(contract.sample_shape))
            )
            + 1
        )
        json_bytes = batch * contract.sample_size * JSON_BYTES_PER_NUMBER + JSON_SLACK_BYTES
        return cls(
            float32_bytes=min(limits.max_body_bytes, batch * contract.sample_bytes),
            json_bytes=min(limits.max_body_bytes, json_bytes),
            max_brackets=1 + batch * lists_per_sample,
            # Separators between numbers and between lists, plus a few for other keys.
            max_commas=batch * (contract.sample_size + lists_per_sample) + MAX_JSON_STRINGS,
        )

    def json_lists_problem(
        self, body: bytes, other_lists: int = 0, other_values: int = 0
    ) -> str | None:
        """Why `body` holds more lists or values than a batch within the limits, or None:
        what a parse would spend CPU and memory building before any check could refuse it.
        `other_lists` and `other_values` allow for a request format's own keys and lists."""
        brackets = body.count(b"[")
        if brackets > self.max_brackets + other_lists:
            return (
                f"{brackets} JSON lists, more than a batch of the allowed size holds "
                f"({self.max_brackets})"
            )
        commas = body.count(b",")
        if commas > self.max_commas + other_values:
            return f"{commas} JSON values, more than a batch of the allowed size holds"
        return None

    def json_structure_problem(self, body: bytes) -> str | None:
        """Why `body` cannot be a batch within the limits, by counting, or None."""
        problem = self.json_lists_problem(body)
        if problem:
            return problem
        if body.count(b"{") > MAX_JSON_OBJECTS:
            return "JSON objects inside 'instances'; samples are lists of numbers"
        if body.count(b'"') > 2 * MAX_JSON_STRINGS:
            return "JSON strings inside 'instances'; samples are lists of numbers"
        return None


class Admission:
    """Samples in flight in this worker; past the bound, a request is shed, never queued."""

    def __init__(self, limits: Limits) -> None:
        self.capacity = limits.inflight_samples
        self.seconds_per_sample = limits.sample_cpu_ms / 1000 / limits.cpu_share
        self.inflight = 0
        self._lock = threading.Lock()

    def try_admit(self, samples: int) -> bool:
        """Reserve `samples`; a request is always admitted into an idle worker."""
        with self._lock:
            if self.inflight and self.inflight + samples > self.capacity:
                return False
            self.inflight += samples
            return True

    def adjust(self, reserved: int, actual: int) -> None:
        with self._lock:
            self.inflight += actual - reserved

    def release(self, samples: int) -> None:
        with self._lock:
            self.inflight -= samples

    def retry_after_seconds(self) -> int:
        """Seconds until the work in flight is likely done at the plan's CPU share."""
        return max(1, math.ceil(self.inflight * self.seconds_per_sample))


class LargeParses:
    """At most `count` large JSON bodies parsed at once; the next one is shed, not queued."""

    def __init__(self, count: int) -> None:
        self._slots = threading.BoundedSemaphore(count)

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()
