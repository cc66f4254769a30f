"""Health checks' waits while an unthrottled service is saturated, with its CPU meanwhile.

Probes beside the gate's typical load, then beside each of its worst-case mixes; every
request of the load must be answered.
"""

from dataclasses import dataclass

from pipeline.gate.expected import ExpectedAnswers
from pipeline.gate.health_probe import HealthProbe
from pipeline.gate.load import Load, drive_load
from pipeline.gate.started_service import StartedService
from pipeline.gate.worst_case import drive_hostile, hostile_kinds, worst_case_concurrency
from pipeline.params import GateParams


@dataclass(frozen=True)
class HealthWaits:
    """Each probe's (wall seconds, CPU-seconds the service spent meanwhile), round by round
    (beside the gate's load, then each worst-case mix); and the probes that failed."""

    rounds: list[list[tuple[float, float]]]
    failures: list[str]


def health_waits(
    service: StartedService, settings: GateParams, expected: ExpectedAnswers
) -> HealthWaits:
    """Probes beside the gate's typical load, then beside each of gate.cost_worst_case_rounds
    worst-case mixes (pipeline.gate.throttled sends both again under the quota)."""
    url, accounting_file = service.url, service.group.accounting_file
    probing = (settings.cost_health_probe_interval_seconds, settings.health_probe_timeout_seconds)
    rounds, failures = [], []
    typical = Load.of(settings, "cost: load unthrottled")
    with HealthProbe(url, *probing, accounting_file=accounting_file) as probe:
        load = drive_load(url, expected, typical)
    # Unthrottled and first in line for a core, every request is answered in milliseconds: one
    # that failed or timed out here is the service's fault, whatever the quota run saw.
    load.require_answered("unthrottled")
    # No accounting file (a psutil-only group): no CPU per probe, and the timings take the
    # replay's health figure instead (pipeline/gate/at_share.py).
    rounds.append(list(zip(probe.latencies_s, probe.cpu_waits_s, strict=False)))
    failures += probe.failures
    for _ in range(settings.cost_worst_case_rounds):
        with HealthProbe(url, *probing, accounting_file=accounting_file) as probe:
            drive_hostile(
                url,
                hostile_kinds(expected.samples, service.launch.limits),
                concurrency=worst_case_concurrency(service.launch.limits, settings),
                timeout_seconds=settings.worst_case_timeout_seconds,
            )
        rounds.append(list(zip(probe.latencies_s, probe.cpu_waits_s, strict=False)))
        failures += probe.failures
    return HealthWaits(rounds, failures)
