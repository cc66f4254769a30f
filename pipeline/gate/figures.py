"""The figures a gate verdict keeps beside its measures, and the series the report charts.

Memory, workers, the unthrottled costs, the throttled run's own wall times, the load, the
health probes and the worst case; and how many workers of the measured size fit.
"""

from typing import Any

import numpy as np

from pipeline.cgroups import workers_that_fit
from pipeline.gate.at_share import HEALTH_PERCENTILE, percentile
from pipeline.gate.cost import ServiceCost, least_batch_cost
from pipeline.gate.throttled import ServiceRun
from pipeline.params import GateParams

MAX_SERIES_POINTS = 300  # the report charts the series: the verdict stays small
LATENCY_BINS = 30


def figures_of(
    run: ServiceRun, cost: ServiceCost, settings: GateParams, replay_figures: dict
) -> dict[str, Any]:
    """What the run and the costs showed, judged or not."""
    memory, processes = run.memory, run.processes
    figures = {
        "peak_memory_mb": memory.peak_mb,
        "worst_case_memory_mb": memory.worst_case_mb,
        "usage_after_load_mb": memory.usage_after_load_mb,
        "failcnt": memory.failcnt,
        "master_rss_mb": round(processes.master_rss_mb, 1),
        "worker_uss_mb": [round(mb, 1) for mb in processes.worker_uss_mb],
        "workers": len(processes.workers_before),
        "cpu_throttled_periods": run.throttled_periods,
        "cpu_throttled_seconds": round(run.throttled_seconds, 2),
        "workers_timed_out_under_quota": len(processes.heartbeat_timeouts),
    }
    costs = cost_figures(cost, settings)
    if costs["cpu_ms_per_request_least_batch"]:
        figures["cpu_ms_per_request"] = costs["cpu_ms_per_request_least_batch"]
    figures.update(replay_figures)
    figures.update(
        cost=costs, throttled=throttled_figures(run), interference=interference_of(cost, run)
    )
    if run.load is not None:
        figures.update(
            requests=settings.requests,
            concurrency=settings.concurrency,
            first_failures=run.load.failures[:3],
            first_wrong_answers=run.load.wrong_answers[:3],
            requests_timed_out_under_quota=len(run.load.timeouts),
        )
    if run.health_latencies_s:
        latencies = np.array(run.health_latencies_s)
        figures["health_probes"] = {
            "count": len(latencies),
            "p50_seconds": round(float(np.percentile(latencies, 50)), 3),
            "max_seconds": round(float(latencies.max()), 3),
            "failed": len(run.health_failures),
            "first_failures": run.health_failures[:3],
        }
    if run.hostile is not None:
        figures["worst_case"] = {
            "concurrency": run.worst_case_concurrency,
            "max_batch": run.limits.max_batch,
            "max_body_bytes": run.limits.max_body_bytes,
            "requests": run.hostile.kinds,
            "first_errors": run.hostile.errors[:3],
        }
    return figures


def cost_figures(cost: ServiceCost, settings: GateParams) -> dict[str, Any]:
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
            least_batch_cost(requests_ms, settings.cost_batch_requests), 3
        )
        if requests_ms
        else None,
        # Each service's window of one-at-a-time requests: the cheapest is judged.
        "cpu_ms_per_request_least_batch_by_window": [
            round(least * 1000, 3) for least in cost.request_window_least_batches
        ],
        "cpu_ms_per_request_p50": round(percentile(requests_ms, 50), 3) if requests_ms else None,
        "cpu_ms_per_request_p95": round(percentile(requests_ms, 95), 3) if requests_ms else None,
        "cpu_ms_per_request_saturated": round(cost.saturated_cpu_seconds * 1000, 3)
        if cost.saturated_cpu_seconds
        else None,
        "cpu_ms_per_request_saturated_by_service": [
            round(saturated * 1000, 3) for saturated in cost.saturated_cpu_seconds_by_service
        ],
        "saturation_clients": settings.cost_saturation_clients,
        "cpu_ms_per_health_check_p50": round(percentile(health_ms, 50), 3) if health_ms else None,
        "health_probes_timed": len(cost.health_probes),
        "cpu_seconds_while_a_probe_waited_p99": round(
            percentile([cpu for _, cpu in cost.health_probes], HEALTH_PERCENTILE), 4
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
    started = run.cold_start
    figures: dict[str, Any] = {
        "cpu_accounting": run.enforcement.cpu_accounting,
        "high_cpu_weight": run.enforcement.prioritised,
        "cold_start_seconds": round(started.seconds, 3) if started else None,
        "cold_start_cpu_seconds": round(started.cpu_seconds, 3) if started else None,
        "throttled_periods": run.throttled_periods,
        "throttled_seconds": round(run.throttled_seconds, 2),
    }
    if run.cpu_seconds_per_request:
        figures["cpu_ms_per_request"] = round(run.cpu_seconds_per_request * 1000, 2)
    if run.load is not None and run.load.latencies_ms:
        figures.update(
            latency_p50_ms=round(percentile(run.load.latencies_ms, 50), 2),
            latency_p95_ms=round(percentile(run.load.latencies_ms, 95), 2),
            latency_p99_ms=round(percentile(run.load.latencies_ms, 99), 2),
            throughput_rps=round(run.load.throughput_rps, 1),
        )
    if run.health_latencies_s:
        # The judged figure's percentile, for the side-by-side, and the slowest probe.
        figures["health_latency_saturated_seconds"] = round(
            percentile(run.health_latencies_s, HEALTH_PERCENTILE), 3
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


def capacity(peak_mb: float, master_mb: float, budget_mb: float, workers: int) -> dict[str, Any]:
    """How many workers of the measured size fit in the budget (for WEB_CONCURRENCY)."""
    if not workers:
        return {}
    per_worker_mb = max(1.0, (peak_mb - master_mb) / workers)
    return {
        "per_worker_mb": round(per_worker_mb, 1),
        "master_mb": round(master_mb, 1),
        "workers_that_fit": workers_that_fit(per_worker_mb, master_mb, budget_mb),
        "rule": "floor((0.9 x limit - master RSS) / ((worst-case peak - master RSS) / workers))",
    }


def series_of(run: ServiceRun) -> dict[str, dict[str, list]]:
    """The group's memory over the run and the typical load's latencies, for the charts."""
    return {
        "memory": downsampled(*run.memory.series),
        "latency_ms": latency_histogram(run.load.latencies_ms if run.load else [], LATENCY_BINS),
    }


def downsampled(seconds: list[float], values: list[float]) -> dict[str, list[float]]:
    """At most MAX_SERIES_POINTS points; each keeps its bucket's highest value (peaks show)."""
    if len(values) <= MAX_SERIES_POINTS:
        return {"seconds": list(seconds), "usage_mb": list(values)}
    buckets = np.array_split(np.arange(len(values)), MAX_SERIES_POINTS)
    return {
        "seconds": [seconds[int(b[0])] for b in buckets],
        "usage_mb": [max(values[int(i)] for i in b) for b in buckets],
    }


def latency_histogram(latencies_ms: list[float], bins: int = 30) -> dict[str, list]:
    """Counts of latencies in `bins` log-spaced bins (latencies span decades under a quota)."""
    if not latencies_ms:
        return {"edges": [], "counts": []}
    low, high = max(min(latencies_ms), 0.01), max(max(latencies_ms), 0.02)
    edges = np.geomspace(low, high * 1.0001, bins + 1)
    counts, _ = np.histogram(np.clip(latencies_ms, low, None), bins=edges)
    return {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()}
