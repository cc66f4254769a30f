"""Which Render plans the candidate fits, from what the gate measured on one of them.

Memory scales with workers (the master once, each worker its measured worst case). CPU-bound
figures (cold start, latencies, health under saturation) are measured on the gate's plan and
scaled to another plan's share: below one CPU the kernel's quota throttles a worker in
proportion to its share; above one, a single-threaded worker gets no faster. The request rate
an instance sustains is its usable CPU divided by the CPU time one request costs. Figures for
a plan other than the measured one are estimates, and `why` says so.
"""

import math
from dataclasses import dataclass
from typing import Any

from pipeline.cgroups import workers_that_fit
from pipeline.params import GateParams, Plan

# Measures that a bigger CPU share speeds up: (measure, unit in `why`).
CPU_BOUND = {
    "cold_start_seconds": "s",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "health_latency_saturated_seconds": "s",
}
# Measures no plan changes (a wrong answer is wrong on every plan); a worst-case request that
# crashed the service counts here only when memory was not the cause.
PLAN_INDEPENDENT = ("wrong_answers", "worst_case_errors")


@dataclass(frozen=True)
class Measured:
    """What the gate measured on its plan, as plan fit scales it to the others."""

    plan_name: str
    plan_memory_mb: float
    plan_cpu_share: float
    measures: dict[str, dict]  # the verdict's judged measures
    workers: int
    master_mb: float
    per_worker_mb: float
    cpu_seconds_per_request: float | None
    oom_or_thrash: bool


def _usable_cpus(share: float, workers: int) -> float:
    return min(share, workers)


def fit_one(name: str, plan: Plan, measured: Measured, settings: GateParams) -> dict[str, Any]:
    """One plan's row: whether it fits, why, and the workers and instances it needs."""
    row = plan.row(name)
    problems = []
    measures = measured.measures
    for key in PLAN_INDEPENDENT:
        if key == "worst_case_errors" and measured.oom_or_thrash:
            continue
        if key in measures and not measures[key]["passed"]:
            problems.append(f"{key} {measures[key]['value']}: no plan fixes that")
    budget_mb = plan.max_peak_memory_mb
    master_mb, per_worker_mb = measured.master_mb, measured.per_worker_mb
    bigger = plan.memory_mb > measured.plan_memory_mb
    estimated = name != measured.plan_name
    if measured.oom_or_thrash and bigger:
        # More memory may well be enough: only a run on this plan can say.
        return {
            **row,
            "fits": False,
            "basis": "not measured",
            "why": f"not measured: the service ran out of memory in "
            f"{measured.plan_memory_mb} MB; measure it here (gate.plan={name})",
            "workers": 1,
            "instances": 1,
        }
    if measured.oom_or_thrash:
        problems.append(f"ran out of memory in {measured.plan_memory_mb} MB")
    workers = max(1, math.ceil(plan.cpu_share))
    if per_worker_mb and not measured.oom_or_thrash:
        workers = max(1, min(workers, workers_that_fit(per_worker_mb, master_mb, budget_mb, 1.0)))
        needed_mb = round(master_mb + workers * per_worker_mb, 1)
        if needed_mb > budget_mb:
            problems.append(f"needs {needed_mb} MB, over its {budget_mb} MB budget")
    measured_share = measured.plan_cpu_share
    scale = min(measured_share, measured.workers) / _usable_cpus(plan.cpu_share, workers)
    for key, unit in CPU_BOUND.items():
        if key not in measures:
            continue
        value = measures[key]["value"] * (scale if estimated else 1.0)
        if value > measures[key]["threshold"]:
            word = "estimated" if estimated else "measured"
            problems.append(f"{key} {value:.3f} {unit} {word}, over {measures[key]['threshold']}")
    failed = measures.get("failed_requests")
    if failed and not failed["passed"] and plan.cpu_share <= measured_share:
        problems.append(f"{failed['value']} requests failed at {measured_share} CPU")
    instances = 1
    cpu_per_request = measured.cpu_seconds_per_request
    if cpu_per_request:
        per_instance_rps = (
            _usable_cpus(plan.cpu_share, workers) * settings.plan_fit_utilisation / cpu_per_request
        )
        instances = max(1, math.ceil(settings.target_rps / per_instance_rps))
        if instances > plan.max_instances:
            problems.append(
                f"{settings.target_rps} req/s needs {instances} instances of "
                f"{per_instance_rps:.1f} req/s; the plan allows {plan.max_instances}"
            )
    basis = "estimated" if estimated else "measured"
    if problems:
        why = f"does not fit ({basis}): " + "; ".join(problems)
    else:
        why = "every gate passes (" + (
            "estimated from the measured plan)" if estimated else "measured)"
        )
    return {
        **row,
        "fits": not problems,
        "basis": basis,
        "why": why,
        "workers": workers,
        "instances": instances,
    }


def plan_fit(plans: dict[str, Plan], measured: Measured, settings: GateParams) -> dict[str, Any]:
    """Every plan's row, and the cheapest that fits the target rate (None when none does)."""
    rows = [fit_one(name, plan, measured, settings) for name, plan in plans.items()]
    fitting = [row for row in rows if row["fits"]]
    best = min(
        fitting,
        key=lambda row: (row["price_usd_month"] * row["instances"], row["cpu_share"]),
        default=None,
    )
    recommended = (
        {"plan": best["name"], "workers": best["workers"], "instances": best["instances"]}
        if best
        else None
    )
    return {"target_rps": float(settings.target_rps), "plans": rows, "recommended": recommended}


def recommendation_in_words(fit: dict[str, Any]) -> str:
    """The recommendation, e.g. `free x1, 1 worker(s)`; when there is none, why, naming any
    plan that was not measured rather than saying no plan fits."""
    recommended = fit.get("recommended")
    if recommended:
        return (
            f"{recommended['plan']} x{recommended['instances']}, {recommended['workers']} worker(s)"
        )
    unmeasured = [row["name"] for row in fit.get("plans", []) if row.get("basis") == "not measured"]
    if unmeasured:
        return (
            f"no measured plan fits; not measured: {', '.join(unmeasured)} "
            f"(measure one with gate.plan={unmeasured[0]})"
        )
    return "no plan fits"


def measured_from_verdict(report: dict[str, Any]) -> Measured:
    """What plan fit needs of the gate's verdict on the plan it measured."""
    figures, measures = report["figures"], report["measures"]
    cpu_ms = figures.get("cpu_ms_per_request")
    return Measured(
        plan_name=report["plan"]["name"],
        plan_memory_mb=report["plan"]["memory_mb"],
        plan_cpu_share=report["plan"]["cpu_share"],
        measures=measures,
        workers=max(1, figures.get("workers", 1)),
        master_mb=figures.get("master_rss_mb", 0.0),
        per_worker_mb=report["capacity"].get("per_worker_mb", 0.0),
        cpu_seconds_per_request=cpu_ms / 1000 if cpu_ms else None,
        oom_or_thrash=bool(measures["oom_kills"]["value"] or figures.get("failcnt")),
    )
