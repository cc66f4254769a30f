"""The gate's timing measures: judged on the measured CPU cost at the plan's share.

Each timing the gate judges is derived from what the service costs (pipeline.gate.cost,
unthrottled, the group's own accounting) and the plan's CPU share (pipeline.gate.at_share);
the throttled run's own wall times are kept beside them as `throttled`, with each phase's
interference. A judged figure whose cost phase stayed noisy after its repeats is marked with
`host_busy`, the sentence saying how busy the host was.
"""

from typing import Any

import numpy as np

from pipeline.gate.at_share import (
    replay_at_share,
    wall_seconds_at_share,
    wall_seconds_at_steady_share,
)
from pipeline.gate.cost import ServiceCost, least_batch_cost
from pipeline.gate.interference import in_words
from pipeline.gate.run import ServiceRun
from pipeline.verdicts import at_least, at_most


def _percentile(values: list[float], percent: float) -> float:
    return float(np.percentile(values, percent)) if values else float("inf")


def _marked(measure: dict, phase: dict, what: str) -> dict:
    if phase.get("noisy"):
        measure["host_busy"] = in_words(what, phase)
    return measure


# Health under saturation is judged at this percentile of the probes. A round's slowest probe
# lands on a chance pile-up of bodies: on one quiet host it waited for 0.029 to 0.072 CPU-s
# from one run to the next, where the 99th percentile of two rounds (some 1,250 probes) at
# 0.1 CPU stayed within 0.27 to 0.31 s, quiet or beside two busy processes.
HEALTH_PERCENTILE = 99


def _health_at_share(cost: ServiceCost, replays: list[dict], share: float, timeout: float) -> float:
    """The 99th percentile health check under saturation at `share`.

    Each probe of every round (the typical load's and each worst-case mix's) waited for the
    CPU the service spent meanwhile, taken at the share as a steady speed after the longest
    stop a quota makes, and for whatever else held it (a lock or a sleep, which no share
    speeds up: its wall time beyond that CPU). The probes run at the highest priority, so a
    busy host adds little to the latter (at most 8 ms at the 99th percentile, measured). A
    probe that failed unthrottled makes the figure the whole probe timeout, as Render counts
    it. The replays' slowest health check where no probe was timed.
    """
    if cost.health_probe_failures:
        return timeout
    probes = cost.health_probes
    if not probes:
        return max((s for replay in replays for s in replay["health_latencies_s"]), default=0.0)
    return _percentile(
        [max(0.0, wall - cpu) + wall_seconds_at_steady_share(cpu, share) for wall, cpu in probes],
        HEALTH_PERCENTILE,
    )


def _replay_window(
    window: list[float],
    mean_cost: float,
    cost: ServiceCost,
    settings: dict,
    share: float,
    workers: int,
) -> dict:
    """The gate's load replayed at `share` on one window's per-request costs, scaled so that
    their mean is `mean_cost` (the cheapest window's least batch): the level from the cheapest
    window, the spread of costs around it from this one."""
    scale = mean_cost / float(np.mean(window))
    return replay_at_share(
        [c * scale for c in window],
        _percentile(cost.health_cpu_seconds, 50) if cost.health_cpu_seconds else 0.0,
        share=share,
        workers=max(1, workers),
        clients=settings["concurrency"],
        # Every measured cost at least once: a replay of fewer requests than were timed
        # takes only the first ones, and with 40 of 200 its p95 read 170 to 283 ms from one
        # run to the next with a least batch of 1.80 to 1.95 ms.
        requests_total=max(settings["requests"], len(window)),
        health_interval=settings["health_probe_interval_seconds"],
    )


# Each latency percentile is the least over the windows' replays, and the throughput the
# most, as a cold start is the least of a few: the host's interference adds outliers to the
# costs, and the window it disturbed least holds the fewest. The 99th percentile of one
# window's replay rests on its few costliest requests: four services of one quiet run read
# 211 to 296 ms, where beside two busy processes the same fresh clone's read 177 to 197 (the
# least: 211 and 177; the median: 271 and 194). A tail of the service's own shows in every
# window, so the least still carries it.
def _least_percentile(replays: list[dict], percent: float) -> float:
    return min(_percentile(replay["latencies_ms"], percent) for replay in replays)


def timing_measures(
    cost: ServiceCost, settings: dict, plan: dict, workers: int
) -> tuple[dict, dict]:
    """Cold start, latency percentiles, throughput, sustainable rate and health under
    saturation, each at the plan's share, from the measured costs; and the replays' p50 and
    each window's p99."""
    share = plan["cpu_share"]
    cheapest = cost.cheapest_start
    start_phase, requests_phase = cost.cold_start_phases[cheapest], cost.requests_phase
    cold_start = wall_seconds_at_share(cost.cold_start_cpu_seconds[cheapest], share)
    measures = {
        "cold_start_seconds": _marked(
            at_most(round(cold_start, 3), settings["max_cold_start_seconds"]),
            start_phase,
            "the cold starts",
        )
    }
    if not cost.request_cpu_seconds:
        return measures, {}
    mean_cost = least_batch_cost(cost.request_cpu_seconds, settings["cost_batch_requests"])
    replays = [
        _replay_window(window, mean_cost, cost, settings, share, workers)
        for window in cost.replayed_windows or [cost.request_cpu_seconds]
    ]
    # A worker is one Python process: it uses at most one CPU, whatever the plan gives.
    usable_cpus = min(share, max(1, workers))
    derived = {
        "latency_p95_ms": at_most(
            round(_least_percentile(replays, 95), 2), settings["max_latency_p95_ms"]
        ),
        "latency_p99_ms": at_most(
            round(_least_percentile(replays, 99), 2), settings["max_latency_p99_ms"]
        ),
        "throughput_rps": at_least(
            round(max(replay["throughput_rps"] for replay in replays), 1),
            settings["min_throughput_rps"],
        ),
        "health_latency_saturated_seconds": at_most(
            round(
                _health_at_share(cost, replays, share, settings["health_probe_timeout_seconds"]),
                3,
            ),
            settings["max_health_latency_seconds"],
        ),
    }
    if failures := cost.health_probe_failures:
        derived["health_latency_saturated_seconds"]["why"] = (
            f"{len(failures)} health probe(s) failed with no quota on the service, "
            f"first: {failures[0]}"
        )
    for measure in derived.values():
        _marked(measure, requests_phase, "the per-request costs")
    # Past what the plan clears, requests queue and every invoke is a full batch: the rate is
    # the usable CPU over what an answer costs then (one at a time where that is unknown).
    saturated = cost.saturated_cpu_seconds is not None
    derived["sustainable_rps"] = _marked(
        at_least(
            round(usable_cpus / (cost.saturated_cpu_seconds if saturated else mean_cost), 1),
            settings["min_sustainable_rps"],
        ),
        cost.saturation_phase if saturated else requests_phase,
        "the saturated cost" if saturated else "the per-request costs",
    )
    figures = {
        "latency_p50_ms": round(_least_percentile(replays, 50), 2),
        "latency_p99_ms_by_window": [
            round(_percentile(replay["latencies_ms"], 99), 2) for replay in replays
        ],
    }
    return measures | derived, figures


def cost_figures(cost: ServiceCost, settings: dict) -> dict[str, Any]:
    """What the unthrottled measurement found, for the verdict's figures."""
    requests_ms = [c * 1000 for c in cost.request_cpu_seconds]
    health_ms = [c * 1000 for c in cost.health_cpu_seconds]
    return {
        "accounting": cost.cpu_accounting,
        "high_cpu_weight": cost.prioritised,
        "keeper_cpu_seconds": cost.keeper_cpu_seconds,
        "cold_start_cpu_seconds": cost.cold_start_cpu_seconds,
        "cold_start_wall_seconds_unthrottled": cost.cold_start_wall_seconds,
        "least_cold_start_cpu_seconds": cost.cold_start_cpu_seconds[cost.cheapest_start],
        "requests_timed": len(requests_ms),
        "cpu_ms_per_request_mean": round(float(np.mean(requests_ms)), 3) if requests_ms else None,
        "cpu_ms_per_request_least_batch": round(
            least_batch_cost(requests_ms, settings["cost_batch_requests"]), 3
        )
        if requests_ms
        else None,
        # Each service's window of one-at-a-time requests: the cheapest is judged.
        "cpu_ms_per_request_least_batch_by_window": [
            round(least * 1000, 3) for least in cost.request_window_least_batches
        ],
        "cpu_ms_per_request_p50": round(_percentile(requests_ms, 50), 3) if requests_ms else None,
        "cpu_ms_per_request_p95": round(_percentile(requests_ms, 95), 3) if requests_ms else None,
        "cpu_ms_per_request_saturated": round(cost.saturated_cpu_seconds * 1000, 3)
        if cost.saturated_cpu_seconds
        else None,
        "cpu_ms_per_request_saturated_by_service": [
            round(saturated * 1000, 3) for saturated in cost.saturated_cpu_seconds_by_service
        ],
        "saturation_clients": settings.get("cost_saturation_clients"),
        "cpu_ms_per_health_check_p50": round(_percentile(health_ms, 50), 3) if health_ms else None,
        "health_probes_timed": len(cost.health_probes),
        "cpu_seconds_while_a_probe_waited_p99": round(
            _percentile([cpu for _, cpu in cost.health_probes], HEALTH_PERCENTILE), 4
        )
        if cost.health_probes
        else None,
        "most_cpu_seconds_while_a_probe_waited": [
            round(max((cpu for _, cpu in probes), default=0.0), 4)
            for probes in cost.health_probe_rounds
        ],
        "health_probes_failed": len(cost.health_probe_failures),
        "first_health_probe_failures": cost.health_probe_failures[:3],
    }


def throttled_figures(run: ServiceRun) -> dict[str, Any]:
    """The throttled run's own wall times: reported, not judged (a busy host stretches them)."""
    figures: dict[str, Any] = {
        "cpu_accounting": run.cpu_accounting,
        "high_cpu_weight": run.prioritised,
        "cold_start_seconds": round(run.cold_start_seconds, 3)
        if run.cold_start_seconds is not None
        else None,
        "cold_start_cpu_seconds": round(run.cold_start_cpu_seconds, 3)
        if run.cold_start_cpu_seconds is not None
        else None,
        "throttled_periods": run.throttled_periods,
        "throttled_seconds": round(run.throttled_seconds, 2),
    }
    if run.cpu_seconds_per_request:
        figures["cpu_ms_per_request"] = round(run.cpu_seconds_per_request * 1000, 2)
    if run.load is not None and run.load.latencies_ms:
        figures.update(
            latency_p50_ms=round(run.load.percentile_ms(50), 2),
            latency_p95_ms=round(run.load.percentile_ms(95), 2),
            latency_p99_ms=round(run.load.percentile_ms(99), 2),
            throughput_rps=round(run.load.throughput_rps, 1),
        )
    if run.health_latencies_s:
        # The judged figure's percentile, for the side-by-side, and the slowest probe.
        figures["health_latency_saturated_seconds"] = round(
            _percentile(run.health_latencies_s, HEALTH_PERCENTILE), 3
        )
        figures["health_latency_saturated_max_seconds"] = round(max(run.health_latencies_s), 3)
    return figures


def interference_of(cost: ServiceCost, run: ServiceRun) -> dict[str, dict]:
    """Each timing phase's interference: the judged (unthrottled) ones and the throttled run's."""
    phases = {}
    if cost.cold_start_phases:
        phases["cost: cheapest cold start"] = cost.cold_start_phases[cost.cheapest_start]
    if cost.requests_phase:
        phases["cost: per-request"] = cost.requests_phase
    if cost.saturation_phase:
        phases["cost: saturated"] = cost.saturation_phase
    phases |= {f"throttled: {name}": figures for name, figures in run.phases.items()}
    return phases
