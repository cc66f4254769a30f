"""The gate's timing measures: judged on the measured CPU cost at the plan's share.

Each timing the gate judges is derived from what the service costs (pipeline.gate.cost,
unthrottled, the group's own accounting) at the plan's CPU share (pipeline.gate.at_share); the
throttled run's own wall times are kept beside them (pipeline.gate.figures). A judged figure
whose cost phase stayed noisy after its repeats is marked with `host_busy`, the sentence
saying how busy the host was.
"""

from dataclasses import dataclass

from pipeline.gate.at_share import costs_at_share, percentile
from pipeline.gate.cost import ServiceCost
from pipeline.params import GateParams
from pipeline.verdicts import at_least, at_most


@dataclass(frozen=True)
class Timings:
    """The judged timing measures, and the replays' own figures kept beside them."""

    measures: dict[str, dict]
    figures: dict[str, object]


def timing_measures(cost: ServiceCost, settings: GateParams, workers: int) -> Timings:
    """Cold start, latency percentiles, throughput, sustainable rate and health under
    saturation, each at the plan's share, from the measured costs; and the replays' p50 and
    each window's p99."""
    busy = busy_phases(cost)
    share = settings.target_plan.cpu_share
    at_share = costs_at_share(cost, settings, share, workers)
    measures = {
        "cold_start_seconds": at_most(
            round(at_share.cold_start_seconds, 3), settings.max_cold_start_seconds
        )
    }
    marks = {"cold_start_seconds": busy["the cold starts"]}
    figures: dict[str, object] = {}
    if replays := at_share.replays:
        # A worker is one Python process: it uses at most one CPU, whatever the plan gives.
        usable_cpus = min(share, max(1, workers))
        measures |= {
            "latency_p95_ms": at_most(
                round(at_share.least_latency_ms(95), 2), settings.max_latency_p95_ms
            ),
            "latency_p99_ms": at_most(
                round(at_share.least_latency_ms(99), 2), settings.max_latency_p99_ms
            ),
            # The most over the windows' replays, as the percentiles are the least.
            "throughput_rps": at_least(
                round(max(replay["throughput_rps"] for replay in replays), 1),
                settings.min_throughput_rps,
            ),
            "health_latency_saturated_seconds": at_most(
                round(at_share.health_seconds, 3), settings.max_health_latency_seconds
            ),
        }
        if failures := cost.health_probe_failures:
            measures["health_latency_saturated_seconds"]["why"] = (
                f"{len(failures)} health probe(s) failed with no quota on the service, "
                f"first: {failures[0]}"
            )
        marks |= dict.fromkeys(list(measures)[1:], busy["the per-request costs"])
        # The usable CPU over what an answer costs with the queue full: the rate one instance
        # sustains once traffic outgrows what the plan clears.
        measures["sustainable_rps"] = at_least(
            round(usable_cpus / at_share.answer_cpu_seconds, 1), settings.min_sustainable_rps
        )
        saturated = cost.saturated_cpu_seconds is not None
        marks["sustainable_rps"] = busy[
            "the saturated cost" if saturated else "the per-request costs"
        ]
        figures = {
            "latency_p50_ms": round(at_share.least_latency_ms(50), 2),
            "latency_p99_ms_by_window": [
                round(percentile(replay["latencies_ms"], 99), 2) for replay in replays
            ],
        }
    for name, sentence in marks.items():
        if sentence:
            measures[name]["host_busy"] = sentence
    return Timings(measures, figures)


def busy_phases(cost: ServiceCost) -> dict[str, str | None]:
    """For each cost phase the timings rest on, the sentence saying how busy the host was
    while it stayed noisy (None where it was quiet)."""
    phases = {
        "the cold starts": cost.cold_start_phases[cost.cheapest_start],
        "the per-request costs": cost.requests_phase,
        "the saturated cost": cost.saturation_phase,
    }
    return {
        name: in_words(name, phase) if phase.get("noisy") else None
        for name, phase in phases.items()
    }


def in_words(phase: str, figures: dict) -> str:
    """One sentence naming the host's interference in a noisy phase."""
    percent = figures["service_cpu_wait_share"]
    if figures["measured_for"] == "service":
        return (
            f"the host was busy during {phase}: the service waited {percent * 100:.0f}% of the "
            "phase for CPU it was owed"
        )
    return (
        f"the host was busy during {phase}: tasks on it waited for a CPU "
        f"{(figures['host_cpu_wait_share'] or 0) * 100:.0f}% of the phase (host-wide PSI; this "
        "kernel keeps no per-service figure)"
    )
