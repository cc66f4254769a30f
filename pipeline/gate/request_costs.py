"""What one unthrottled service's requests cost in CPU, read from its group's accounting.

Its predictions and health checks one at a time (a window), then its predictions while more
clients than it batches at once keep its queue full (the saturated cost).
"""

from dataclasses import dataclass, field

import requests

from pipeline.gate.expected import ExpectedAnswers
from pipeline.gate.host import measured_phase
from pipeline.gate.load import Load, drive_load
from pipeline.gate.started_service import StartedService
from pipeline.gate.watch import GateFailure
from pipeline.params import GateParams


@dataclass
class RequestWindow:
    """One service's predictions and health checks timed one at a time (CPU-seconds each),
    then its predictions' least cost with the queue kept full, and each phase's interference."""

    predictions: list[float]
    checks: list[float]
    phase: dict
    saturated: float | None = None
    saturation_phase: dict = field(default_factory=dict)

    @property
    def noisy(self) -> bool:
        return bool(self.phase["noisy"] or self.saturation_phase["noisy"])


def window_costs(
    service: StartedService, settings: GateParams, expected: ExpectedAnswers
) -> RequestWindow:
    """The service's one-at-a-time costs, then its saturated cost: a RequestWindow."""
    group, url = service.group, service.url
    labels = len(expected.labels)

    def predict(session, index):
        sample = expected.samples[index % len(expected.samples)][None]
        response = session.post(
            f"{url}/api/predict/",
            params={"top_k": labels},
            data=sample.astype("<f4").tobytes(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=settings.request_timeout_seconds,
        )
        if response.status_code != 200:
            raise GateFailure(f"a prediction answered HTTP {response.status_code} unthrottled")

    def health(session, _):
        session.get(f"{url}/api/health/", timeout=settings.health_probe_timeout_seconds)

    def timed(session, send, count: int) -> list[float]:
        costs = []
        for index in range(count):
            before = group.cpu_usage_seconds()
            send(session, index)
            costs.append(group.cpu_usage_seconds() - before)
        return costs

    with requests.Session() as session:
        predict(session, 0)  # the first answer pays for lazy set-up: not a request's cost
        with measured_phase(group, settings.max_phase_wait_share) as phase:
            predictions = timed(session, predict, settings.cost_requests)
            checks = timed(session, health, settings.cost_health_requests)
    window = RequestWindow(predictions, checks, phase.figures)
    window.saturated, window.saturation_phase = _saturated_cost(service, settings, expected)
    return window


def _saturated_cost(
    service: StartedService, settings: GateParams, expected: ExpectedAnswers
) -> tuple[float, dict]:
    """CPU-seconds per answered prediction while gate.cost_saturation_clients clients, more
    than the service gathers into one invoke, keep its queue full; and the interference.

    Traffic past what the plan's CPU clears queues up whatever its clients do, so each invoke
    then runs a full batch: this is what an answer costs at the sustainable rate. A busy host
    delays some clients; with four times a batch of them the queue stays full all the same.
    One load takes about half a second, so a moment's disturbance lifts it markedly: the
    figure is the least of gate.cost_saturation_rounds loads, as a cold start is the least of
    a few, and every service the gate starts unthrottled measures it again.
    """
    group = service.group
    saturating = Load.of(
        settings,
        "cost: saturation unthrottled",
        requests=settings.cost_saturation_requests,
        concurrency=settings.cost_saturation_clients,
    )
    costs = []
    with measured_phase(group, settings.max_phase_wait_share) as phase:
        for _ in range(settings.cost_saturation_rounds):
            cpu_before = group.cpu_usage_seconds()
            load = drive_load(service.url, expected, saturating)
            cpu = group.cpu_usage_seconds() - cpu_before
            load.require_answered("unthrottled")
            costs.append(cpu / len(load.latencies_ms))
    return min(costs), phase.figures
