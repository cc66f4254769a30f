"""The gate's verdict on one run of the service and its costs, built once and complete.

Each measure judged, the figures kept, the machine it was measured on, and the plans the
candidate fits.
"""

from typing import Any

from pipeline.gate.cost import ServiceCost
from pipeline.gate.figures import capacity, figures_of, series_of
from pipeline.gate.machine import this_machine
from pipeline.gate.outcome import GateVerdict, completed
from pipeline.gate.plan_fit import measured_from_verdict, plan_fit, recommendation_in_words
from pipeline.gate.render_service import RenderWebService
from pipeline.gate.throttled import ServiceRun
from pipeline.gate.timings import Timings
from pipeline.params import GateParams
from pipeline.verdicts import at_most


def gate_verdict(
    run: ServiceRun,
    cost: ServiceCost,
    timings: Timings,
    settings: GateParams,
    *,
    candidate_sha256: str,
    preflight: dict[str, float],
    render: RenderWebService,
) -> GateVerdict:
    """The gate's verdict on `candidate_sha256` from one run of the service under the plan,
    its unthrottled costs and the timings judged from them."""
    plan = settings.target_plan
    measures = judge(run, settings, timings.measures)
    reasons = reasons_in_words(run, settings)
    enforcement, memory = run.enforcement, run.memory
    report: dict[str, Any] = {
        "plan": plan.row(settings.plan),
        "limits": {
            "memory": {
                "limit_mb": plan.memory_mb,
                "enforced": enforcement.enforced,
                "backend": enforcement.backend,
            },
            "cpu": {
                "share": plan.cpu_share,
                "enforced": enforcement.cpu_enforced,
                "backend": enforcement.cpu_backend,
                **({"note": enforcement.cpu_note} if enforcement.cpu_note else {}),
            },
        },
        # Both limits, for promotion's check (release_bundle reads `enforced`).
        "backend": enforcement.backend,
        "enforced": enforcement.enforced and enforcement.cpu_enforced,
        "machine": this_machine(enforcement.backend),
        "measures": measures,
        "figures": figures_of(run, cost, settings, timings.figures) | preflight,
        "capacity": capacity(
            max(memory.peak_mb, memory.worst_case_mb or 0),
            run.processes.master_rss_mb,
            plan.memory_mb,
            len(run.processes.workers_before),
        ),
        "series": series_of(run),
    }
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
        report["reason"] = "; ".join(reasons)
    if reasons or not all(m["passed"] for m in measures.values()):
        report["service_log_tail"] = run.service_log_tail
    fit = plan_fit(settings.plans, measured_from_verdict(report), settings)
    report.update(plan_fit=fit, start_command=render.start_command, render_env=render.env)
    return completed(report, settings, candidate_sha256, recommendation_in_words(fit))


def judge(run: ServiceRun, settings: GateParams, timings: dict[str, dict]) -> dict[str, dict]:
    """Each gate measure with its value, threshold and outcome; `timings` are the judged
    timings (pipeline.gate.timings), from the CPU cost."""
    processes, memory = run.processes, run.memory
    # A worker that died is one whose PID is gone after the load (gunicorn forks a new one).
    # One the arbiter killed for a missed heartbeat is a wall time under the quota, which a
    # shared host stretches (pipeline/gate/cost.py): reported, not judged here. A model slow
    # enough to miss it on the plan fails the timings derived from its CPU cost first.
    replaced = set(processes.workers_before) - set(processes.workers_after)
    replaced -= set(processes.heartbeat_timeouts)
    max_peak = settings.target_plan.max_peak_memory_mb
    measures = {
        "peak_memory_mb": at_most(memory.peak_mb, max_peak),
        "oom_kills": at_most(memory.oom_kills, 0),
        "workers_replaced": at_most(len(replaced), 0),
    }
    if run.load is not None:
        # A request that timed out under the quota is a wall time there (reported as a figure);
        # unthrottled, every one of the same load must be answered (pipeline/gate/health_waits.py).
        measures |= {
            "failed_requests": at_most(len(run.load.failures), 0),
            "wrong_answers": at_most(len(run.load.wrong_answers), 0),
        }
    measures |= timings
    if memory.worst_case_mb is not None:
        measures["worst_case_memory_mb"] = at_most(memory.worst_case_mb, max_peak)
        measures["worst_case_errors"] = at_most(len(run.hostile.errors), 0)
    return measures


def reasons_in_words(run: ServiceRun, settings: GateParams) -> list[str]:
    """What went wrong, said plainly: OOM kills, thrashing, a service that never answered."""
    reasons, memory = [], run.memory
    limit_mb = settings.target_plan.memory_mb
    if memory.oom_kills:
        peak = max(memory.peak_mb, memory.worst_case_mb or 0)
        reasons.append(
            f"the kernel OOM-killed {memory.oom_kills} process(es) at a peak of "
            f"{peak} MB in a {limit_mb} MB group"
        )
    elif memory.failcnt:
        reasons.append(
            f"the service thrashed at the {limit_mb} MB limit: the group hit it "
            f"{memory.failcnt} times ({memory.failcnt_before_worst_case} before the worst-case "
            "requests) and the kernel reclaimed memory instead of killing anything, so the "
            "service slowed to a crawl"
        )
    if run.failure:
        own_lines = [line for line in run.service_log_tail if line.strip()]
        last_line = own_lines[-1] if own_lines else "no output"
        reasons.append(f"{run.failure} (service log: {last_line})")
    return reasons
