"""What the service costs in CPU, measured where the host's other work cannot move it much.

The service runs in the plan's memory limit with no CPU quota and first in line for a core, so
it rarely waits for one; its group's own accounting (cpuacct.usage, cpu.stat usage_usec) gives
the CPU-seconds it spent. A cold start's cost is the least of a few starts
(gate.cost_cold_starts, more while the cheapest was noisy, up to gate.cost_max_cold_starts,
and the health-probed service's own); its requests' costs are read in every service started
here (pipeline.gate.request_costs), and the cheapest quiet service counts: the costs move from
one service to the next, and the least is the one the host disturbed least. Under a CPU quota
the same work costs several times more CPU on a shared host (short bursts on cold caches), so
the quota's own wall times are reported beside these figures, not judged (docs/gate.md).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.gate.expected import ExpectedAnswers
from pipeline.gate.health_waits import HealthWaits, health_waits
from pipeline.gate.render_service import RenderWebService
from pipeline.gate.request_costs import RequestWindow, window_costs
from pipeline.gate.started_service import ColdStart, unthrottled_service
from pipeline.params import GateParams


@dataclass
class ServiceCost:
    """CPU-seconds the service spent, unthrottled, with each phase's interference."""

    cpu_accounting: str = ""
    prioritised: bool = False
    cold_start_cpu_seconds: list[float] = field(default_factory=list)
    cold_start_wall_seconds: list[float] = field(default_factory=list)
    cold_start_phases: list[dict] = field(default_factory=list)
    # The cheapest window's one-at-a-time costs, and each window's least batch (CPU-seconds).
    request_cpu_seconds: list[float] = field(default_factory=list)
    health_cpu_seconds: list[float] = field(default_factory=list)
    request_window_least_batches: list[float] = field(default_factory=list)
    # The predictions of every window the latency percentiles are replayed from (the quiet
    # ones where there are any; none: the cheapest window's alone).
    replayed_windows: list[list[float]] = field(default_factory=list)
    # Each health probe's (wall seconds, CPU-seconds the service spent meanwhile): one round
    # beside the typical load, then one per worst-case mix.
    health_probe_rounds: list[list[tuple[float, float]]] = field(default_factory=list)
    # Probes that timed out or got anything but 200, unthrottled: no quota explains those.
    health_probe_failures: list[str] = field(default_factory=list)
    requests_phase: dict = field(default_factory=dict)
    # CPU-seconds per answered prediction with the queue kept full (the cheapest service's,
    # and each service's), and that phase's noise.
    saturated_cpu_seconds: float | None = None
    saturated_cpu_seconds_by_service: list[float] = field(default_factory=list)
    saturation_phase: dict = field(default_factory=dict)
    # CPU the keepers spent while the costs were measured (pipeline.gate.host).
    keeper_cpu_seconds: float = 0.0

    @property
    def health_probes(self) -> list[tuple[float, float]]:
        """Every round's probes, as one list."""
        return [probe for probes in self.health_probe_rounds for probe in probes]

    @property
    def cheapest_start(self) -> int:
        costs = self.cold_start_cpu_seconds
        return min(range(len(costs)), key=costs.__getitem__)

    @classmethod
    def of(
        cls,
        starts: list[ColdStart],
        windows: list[RequestWindow],
        waits: HealthWaits,
        batch: int,
        cpu_accounting: str,
        prioritised: bool,
    ) -> "ServiceCost":
        """The costs of every service started unthrottled: its cold starts, the cheapest quiet
        window's request costs, every window's least figures, and the chosen health waits."""
        cheapest = cheapest_window(windows, batch)
        least_saturated = cheapest_saturation(windows)
        return cls(
            cpu_accounting=cpu_accounting,
            prioritised=prioritised,
            cold_start_cpu_seconds=[round(start.cpu_seconds, 4) for start in starts],
            cold_start_wall_seconds=[round(start.seconds, 3) for start in starts],
            cold_start_phases=[start.phase for start in starts],
            request_cpu_seconds=cheapest.predictions,
            health_cpu_seconds=cheapest.checks,
            request_window_least_batches=[
                round(least_batch_cost(window.predictions, batch), 6) for window in windows
            ],
            replayed_windows=[window.predictions for window in quiet_windows(windows)],
            health_probe_rounds=waits.rounds,
            health_probe_failures=waits.failures,
            requests_phase=cheapest.phase,
            saturated_cpu_seconds=least_saturated.saturated,
            saturated_cpu_seconds_by_service=[round(window.saturated, 6) for window in windows],
            saturation_phase=least_saturated.saturation_phase,
            keeper_cpu_seconds=round(sum(start.keeper_cpu_seconds for start in starts), 2),
        )


def measure_cost(
    render: RenderWebService, settings: GateParams, expected: ExpectedAnswers, model_dir: Path
) -> ServiceCost:
    """Cold starts and per-request costs of the service unthrottled; GateFailure if it fails."""
    starts, windows = [], []
    for attempt in range(1, settings.cost_max_cold_starts + 1):
        with unthrottled_service(render, settings, model_dir) as service:
            accounting, prioritised = service.group.cpu_accounting, service.prioritised
            windows.append(window_costs(service, settings, expected))
        started = service.cold_start
        starts.append(started)
        print(
            f"cost cold start {attempt}/{settings.cost_max_cold_starts}: "
            f"{started.cpu_seconds:.3f} CPU-s, {started.seconds:.2f} s wall"
            + (" (host busy)" if started.phase["noisy"] else ""),
            flush=True,
        )
        cheapest = min(starts, key=lambda start: round(start.cpu_seconds, 4))
        if attempt >= settings.cost_cold_starts and not cheapest.phase["noisy"]:
            break
    # One more service, whose health is probed too: repeated while its request phases were
    # noisy, up to gate.max_phase_repeats times.
    waits: HealthWaits | None = None
    for attempt in range(1, settings.max_phase_repeats + 2):
        with unthrottled_service(render, settings, model_dir) as service:
            window = window_costs(service, settings, expected)
            probed = health_waits(service, settings, expected)
        windows.append(window)
        # A cold start too, seconds after the others: one more of which the least counts.
        starts.append(service.cold_start)
        print(
            f"cost per request {attempt}/{settings.max_phase_repeats + 1}: "
            f"{sum(window.predictions) / len(window.predictions) * 1000:.2f} ms CPU per "
            f"prediction, {window.saturated * 1000:.2f} ms with the queue full"
            + (" (host busy)" if window.noisy else ""),
            flush=True,
        )
        if waits is None or not window.noisy:
            waits = probed
        if not window.noisy:
            break
    batch = settings.cost_batch_requests
    return ServiceCost.of(starts, windows, waits, batch, accounting, prioritised)


def least_batch_cost(costs: list[float], batch: int) -> float:
    """The least mean CPU per request over consecutive batches of `batch` requests: like the
    least of a few cold starts, the batch the host's other work disturbed least."""
    if len(costs) < 2 * batch:
        return float(np.mean(costs))
    usable = len(costs) // batch * batch
    return float(np.asarray(costs[:usable]).reshape(-1, batch).mean(axis=1).min())


def quiet_windows(windows: list[RequestWindow]) -> list[RequestWindow]:
    """The windows whose one-at-a-time phase the host left quiet; all of them if none was."""
    return [window for window in windows if not window.phase["noisy"]] or windows


def cheapest_window(windows: list[RequestWindow], batch: int) -> RequestWindow:
    """The window whose least batch cost least, among the quiet ones where there are any."""
    return min(
        quiet_windows(windows), key=lambda window: least_batch_cost(window.predictions, batch)
    )


def cheapest_saturation(windows: list[RequestWindow]) -> RequestWindow:
    """The window whose saturated cost was least, among those whose saturated phase was
    quiet where there are any."""
    measured = [window for window in windows if window.saturated is not None]
    quiet = [window for window in measured if not window.saturation_phase["noisy"]] or measured
    return min(quiet, key=lambda window: window.saturated)
