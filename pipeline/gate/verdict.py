"""The gate's verdict from one service run: measures judged, figures kept, series."""

from typing import Any

import numpy as np

from pipeline.cgroups import workers_that_fit
from pipeline.gate.cost import ServiceCost
from pipeline.gate.machine import this_machine
from pipeline.gate.plans import plan_row
from pipeline.gate.run import ServiceRun
from pipeline.gate.timings import (
    cost_figures,
    interference_of,
    throttled_figures,
    timing_measures,
)
from pipeline.verdicts import at_most

MAX_SERIES_POINTS = 300  # the report charts the series: the verdict stays small
LATENCY_BINS = 30


def judge(
    run: ServiceRun, cost: ServiceCost, settings: dict, plan: dict, timings: dict | None = None
) -> dict[str, dict]:
    """Each gate measure with its value, threshold and outcome; timings from the CPU cost
    (`timings`: timing_measures' judged ones, where the caller has them already)."""
    # A worker that died is one whose PID is gone after the load (gunicorn forks a new one).
    # One the arbiter killed for a missed heartbeat is a wall time under the quota, which a
    # shared host stretches (pipeline/gate/cost.py): reported, not judged here. A model slow
    # enough to miss it on the plan fails the timings derived from its CPU cost first.
    replaced = len(set(run.workers_before) - set(run.workers_after) - set(run.heartbeat_timeouts))
    max_peak = plan["max_peak_memory_mb"]
    measures = {
        "peak_memory_mb": at_most(run.peak_memory_mb, max_peak),
        "oom_kills": at_most(run.oom_kills, 0),
        "workers_replaced": at_most(replaced, 0),
    }
    if run.load is not None:
        # A request that timed out under the quota is a wall time there (reported as a figure);
        # unthrottled, every one of the same load must be answered (pipeline/gate/cost.py).
        measures |= {
            "failed_requests": at_most(len(run.load.failures), 0),
            "wrong_answers": at_most(len(run.load.wrong_answers), 0),
        }
    if timings is None:
        timings, _ = timing_measures(cost, settings, plan, len(run.workers_before))
    measures |= timings
    if run.worst_case_memory_mb is not None:
        measures["worst_case_memory_mb"] = at_most(run.worst_case_memory_mb, max_peak)
        measures["worst_case_errors"] = at_most(len(run.hostile.errors), 0)
    return measures


def reasons_in_words(run: ServiceRun, plan: dict) -> list[str]:
    """What went wrong, said plainly: OOM kills, thrashing, a service that never answered."""
    reasons = []
    if run.oom_kills:
        peak = max(run.peak_memory_mb, run.worst_case_memory_mb or 0)
        reasons.append(
            f"the kernel OOM-killed {run.oom_kills} process(es) at a peak of "
            f"{peak} MB in a {plan['memory_mb']} MB group"
        )
    elif run.failcnt:
        reasons.append(
            f"the service thrashed at the {plan['memory_mb']} MB limit: the group hit it "
            f"{run.failcnt} times ({run.failcnt_before_worst_case} before the worst-case "
            "requests) and the kernel reclaimed memory instead of killing anything, so the "
            "service slowed to a crawl"
        )
    if run.failure:
        own_lines = [line for line in run.service_log_tail if line.strip()]
        last_line = own_lines[-1] if own_lines else "no output"
        reasons.append(f"{run.failure} (service log: {last_line})")
    return reasons


def downsampled(seconds: list[float], values: list[float]) -> dict[str, list[float]]:
    """At most MAX_SERIES_POINTS points; each keeps its bucket's highest value (peaks show)."""
    if len(values) <= MAX_SERIES_POINTS:
        return {"seconds": list(seconds), "usage_mb": list(values)}
    buckets = np.array_split(np.arange(len(values)), MAX_SERIES_POINTS)
    return {
        "seconds": [seconds[int(b[0])] for b in buckets],
        "usage_mb": [max(values[int(i)] for i in b) for b in buckets],
    }


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


def latency_histogram(latencies_ms: list[float], bins: int = 30) -> dict[str, list]:
    """Counts of latencies in `bins` log-spaced bins (latencies span decades under a quota)."""
    if not latencies_ms:
        return {"edges": [], "counts": []}
    low, high = max(min(latencies_ms), 0.01), max(max(latencies_ms), 0.02)
    edges = np.geomspace(low, high * 1.0001, bins + 1)
    counts, _ = np.histogram(np.clip(latencies_ms, low, None), bins=edges)
    return {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()}


def figures_of(
    run: ServiceRun, cost: ServiceCost, settings: dict, replay_figures: dict
) -> dict[str, Any]:
    figures = {
        "peak_memory_mb": run.peak_memory_mb,
        "worst_case_memory_mb": run.worst_case_memory_mb,
        "usage_after_load_mb": run.usage_after_load_mb,
        "failcnt": run.failcnt,
        "master_rss_mb": round(run.master_rss_mb, 1),
        "worker_uss_mb": [round(mb, 1) for mb in run.worker_uss_mb],
        "workers": len(run.workers_before),
        "cpu_throttled_periods": run.throttled_periods,
        "cpu_throttled_seconds": round(run.throttled_seconds, 2),
        "workers_timed_out_under_quota": len(run.heartbeat_timeouts),
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
            requests=settings["requests"],
            concurrency=settings["concurrency"],
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


def verdict(
    run: ServiceRun, cost: ServiceCost, settings: dict, plan_name: str, plan: dict
) -> dict[str, Any]:
    """The gate's report for one run of the service under plan `plan_name` (no plan fit yet)."""
    # The replays behind the timings run once, for the measures and the figures both.
    timings, replay_figures = timing_measures(cost, settings, plan, len(run.workers_before))
    measures = judge(run, cost, settings, plan, timings)
    figures = figures_of(run, cost, settings, replay_figures)
    workers = len(run.workers_before)
    worst_peak = max(run.peak_memory_mb, run.worst_case_memory_mb or 0)
    report = {
        "plan": plan_row(plan_name, plan),
        "limits": {
            "memory": {
                "limit_mb": plan["memory_mb"],
                "enforced": run.enforced,
                "backend": run.backend,
            },
            "cpu": {
                "share": plan["cpu_share"],
                "enforced": run.cpu_enforced,
                "backend": run.cpu_backend,
                **({"note": run.cpu_note} if run.cpu_note else {}),
            },
        },
        # Both limits, for promotion's check (release_bundle reads `enforced`).
        "backend": run.backend,
        "enforced": run.enforced and run.cpu_enforced,
        "machine": this_machine(run.backend),
        "measures": measures,
        "figures": figures,
        "capacity": capacity(worst_peak, run.master_rss_mb, plan["memory_mb"], workers),
        "series": {
            "memory": downsampled(*run.memory_series),
            "latency_ms": latency_histogram(
                run.load.latencies_ms if run.load else [], LATENCY_BINS
            ),
        },
    }
    reasons = reasons_in_words(run, plan)
    busy = sorted({m["host_busy"] for m in measures.values() if "host_busy" in m})
    if busy:
        report["host_busy"] = busy
        failed_busy = [n for n, m in measures.items() if "host_busy" in m and not m["passed"]]
        if failed_busy:
            reasons.append(
                f"{', '.join(failed_busy)} may be the host's doing, not the model's: "
                + "; ".join(busy)
            )
    if reasons:
        report.update(reason="; ".join(reasons), service_log_tail=run.service_log_tail)
    return report


def verdict_without_a_run(settings: dict, plan_name: str, reason: str) -> dict[str, Any]:
    """The same shape when the service never ran (refused, or no group could be made)."""
    plan = settings["plans"][plan_name]
    rows = [
        {
            **plan_row(name, row),
            "fits": False,
            "why": "not measured: " + reason,
            "workers": 0,
            "instances": 0,
        }
        for name, row in settings["plans"].items()
    ]
    return {
        "plan": plan_row(plan_name, plan),
        "limits": {
            "memory": {"limit_mb": plan["memory_mb"], "enforced": False, "backend": "none"},
            "cpu": {"share": plan["cpu_share"], "enforced": False, "backend": "none"},
        },
        "measures": {},
        "series": {
            "memory": {"seconds": [], "usage_mb": []},
            "latency_ms": {"edges": [], "counts": []},
        },
        "plan_fit": {
            "target_rps": float(settings["target_rps"]),
            "plans": rows,
            "recommended": None,
        },
        "reason": reason,
    }
