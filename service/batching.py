"""Adaptive batching: samples of concurrent requests share one batch-N invoke.

Each request hands its checked raw samples to the worker's `Batcher` and waits. One runner
(a greenlet under the gevent worker, a thread elsewhere) is the only caller of the
interpreters: it takes up to N queued samples, one per request in arrival order, normalises
them as one array, runs them (service/interpreter.py decides batch-N, padded or batch-1) and
hands each request its own rows. Before each invoke it yields to the event loop, so a health
check waits for at most one invoke, and bodies that arrived meanwhile join the next batch.

It waits for more samples only when concurrency was just seen (the last batch served several
requests) or admitted requests are still being read, and then at most `max_wait_seconds`:
a lone client's request runs at once (`idle_wait_seconds`, 0 by default).
"""

import collections
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from service.body import yield_to_other_requests
from service.predictor import InputError, Predictor

log = logging.getLogger("service")
WAIT_STEP_SECONDS = 0.0005


class PendingRequest:
    """One request's samples in the queue, and its outputs as batches fill them in."""

    __slots__ = ("done", "error", "outputs", "remaining", "samples", "taken")

    def __init__(self, samples: np.ndarray, classes: int) -> None:
        self.samples = samples
        self.outputs = np.empty((len(samples), classes), np.float32)
        self.taken = 0  # rows handed to a batch so far
        self.remaining = len(samples)  # rows whose outputs have not arrived yet
        self.error: Exception | None = None
        self.done = threading.Event()

    def fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self.done.set()


class Batcher:
    """Gathers samples of concurrent requests into batches for one predictor (one worker)."""

    def __init__(
        self,
        predictor: Predictor,
        max_wait_seconds: float,
        idle_wait_seconds: float = 0.0,
        samples_admitted: Callable[[], int] = lambda: 0,
    ) -> None:
        self.predictor = predictor
        self.batch_size = predictor.batch_size
        self.max_wait_seconds, self.idle_wait_seconds = max_wait_seconds, idle_wait_seconds
        # Samples admitted in this worker, read or not: more than are queued means more come.
        self.samples_admitted = samples_admitted
        self._queue: collections.deque[PendingRequest] = collections.deque()
        self._queued_samples = 0
        self._queue_lock = threading.Lock()  # for real threads; under gevent it never waits
        self._work = threading.Event()
        self._runner: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._last_batch_requests = 1
        classes = len(predictor.contract.labels)
        self._classes = classes
        self._raw = np.empty((self.batch_size, *predictor.contract.sample_shape), np.float32)
        self.batches = 0  # invokes of the router so far, for tests and the benchmark
        self.samples = 0

    @property
    def queued_samples(self) -> int:
        """Samples waiting for a batch (not yet taken by the runner)."""
        return self._queued_samples

    def outputs(self, samples: np.ndarray) -> np.ndarray:
        """The model's outputs (n, classes) for this request's raw float32 samples, in order.

        InputError if a sample overflows once normalised; whatever a failed batch raised.
        """
        request = PendingRequest(samples, self._classes)
        self._ensure_runner()
        with self._queue_lock:
            self._queue.append(request)
            self._queued_samples += len(samples)
        self._work.set()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.outputs

    def _ensure_runner(self) -> None:
        if self._runner is None:
            with self._start_lock:
                if self._runner is None:
                    self._runner = threading.Thread(
                        target=self._run_forever, name="batcher", daemon=True
                    )
                    self._runner.start()

    def _run_forever(self) -> None:
        while True:
            self._work.wait()
            self._work.clear()  # before looking: a request queued after this sets it again
            while self._queue:
                try:
                    self._run_one_batch()
                except Exception:  # a bug of ours: its requests got it; keep serving
                    log.exception("the batch runner failed")

    def _wanted(self) -> int:
        """Samples worth waiting for: what the last batch's concurrency or admissions promise."""
        incoming = self.samples_admitted() - self._queued_samples
        return min(self.batch_size, max(self._last_batch_requests, self._queued_samples + incoming))

    def _gather_wait(self) -> None:
        wanted = self._wanted()
        limit = self.max_wait_seconds if wanted > self._queued_samples else self.idle_wait_seconds
        deadline = time.monotonic() + limit
        while self._queued_samples < wanted and time.monotonic() < deadline:
            time.sleep(WAIT_STEP_SECONDS)
            wanted = self._wanted()

    def _take(self) -> list[tuple[PendingRequest, int, int]]:
        """Up to batch_size queued rows: (request, first row, row count), oldest request first.

        Rows are dealt one per request in turn, so a one-sample request that arrives behind a
        64-sample one shares the next invoke instead of waiting for all 64.
        """
        counts: dict[PendingRequest, int] = {}
        room = self.batch_size
        with self._queue_lock:
            while room and self._queue:
                for request in list(self._queue):
                    if not room:
                        break
                    counts[request] = counts.get(request, 0) + 1
                    request.taken += 1
                    room -= 1
                    if request.taken == len(request.samples):
                        self._queue.remove(request)
            self._queued_samples -= self.batch_size - room
        return [(request, request.taken - count, count) for request, count in counts.items()]

    def _run_one_batch(self) -> None:
        # Let ready requests run first: health checks answer, and bodies read meanwhile join.
        yield_to_other_requests()
        self._gather_wait()
        parts = [part for part in self._take() if part[0].error is None]
        if not parts:
            return
        count = sum(rows for _, _, rows in parts)
        raw = self._raw[:count]
        position = 0
        for request, first, rows in parts:
            raw[position : position + rows] = request.samples[first : first + rows]
            position += rows
        try:
            normalised = self.predictor.normalise(raw)
            finite = np.isfinite(normalised.reshape(count, -1)).all(axis=1)
            outputs = self.predictor.outputs(np.ascontiguousarray(normalised, dtype=np.float32))
        except Exception as error:  # fails this batch's requests only
            for request, _, _ in parts:
                request.fail(error)
            self._drop_failed()
            return
        self.batches += 1
        self.samples += count
        self._last_batch_requests = len(parts)
        position = 0
        for request, first, rows in parts:
            if not finite[position : position + rows].all():
                request.fail(InputError(self._overflow_message()))
            else:
                request.outputs[first : first + rows] = outputs[position : position + rows]
                request.remaining -= rows
                if request.remaining == 0:
                    request.done.set()
            position += rows
        self._drop_failed()

    def _drop_failed(self) -> None:
        """Failed requests leave the queue with their rows not yet taken."""
        with self._queue_lock:
            for request in [request for request in self._queue if request.error is not None]:
                self._queue.remove(request)
                self._queued_samples -= len(request.samples) - request.taken

    def _overflow_message(self) -> str:
        return (
            "input overflows float32 once normalised by the bundle's preprocessing; "
            f"expected {self.predictor.contract.describe()} within the range the model was "
            "trained on"
        )
