"""What a gate verdict comes to: passed, or what failed, in words.

Also the warnings about limits the kernel did not enforce, and the verdict when the service
never ran (refused before it started, or no group could be made).
"""

from dataclasses import dataclass, field
from typing import Any

from pipeline.params import GateParams


@dataclass(frozen=True)
class GateVerdict:
    """reports/gate.json's content; what failed (nothing when it passed); warnings about
    limits the kernel did not enforce; and the lines that say what passed."""

    report: dict[str, Any]
    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def completed(
    report: dict[str, Any],
    settings: GateParams | None,
    candidate_sha256: str | None,
    recommendation: str | None,
) -> GateVerdict:
    """The report with the candidate it judged and whether it passed; what failed in words;
    and, where the kernel did not enforce a limit, a warning (a problem too, unless
    gate.require_enforced is off)."""
    problems = [
        f"{name} {m['value']} (needs {m['rule']} {m['threshold']})"
        + (f": {m['why']}" if m.get("why") else "")
        for name, m in report["measures"].items()
        if not m["passed"]
    ]
    if report.get("reason"):
        problems.insert(0, report["reason"])
    warnings = []
    # Only a run that made its group can say whether the kernel enforced it.
    limits = report["limits"] if "backend" in report else {}
    for what, limit in limits.items():
        if limit["enforced"]:
            continue
        warnings.append(
            f"WARNING: the {what} limit was NOT enforced by the kernel on this machine "
            f"({limit.get('note') or limit['backend']}); figures are not what Render's kernel "
            "would give"
        )
        if settings.require_enforced:
            problems.append(
                f"the {what} limit was not enforced by the kernel (gate.require_enforced is on)"
            )
    report.update(candidate_sha256=candidate_sha256, passed=not problems)
    lines = [] if problems else passed_in_words(report, recommendation)
    return GateVerdict(report, problems, warnings, lines)


def passed_in_words(report: dict[str, Any], recommendation: str | None) -> list[str]:
    """The line a passed gate prints, then a note for each figure the host's work marked."""
    plan, measures = report["plan"], report["measures"]
    lines = [
        f"gate passed on plan {plan['name']} ({plan['memory_mb']} MB, {plan['cpu_share']} CPU; "
        f"{report['backend']}): worst-case peak {measures['worst_case_memory_mb']['value']} MB, "
        f"cold start {measures['cold_start_seconds']['value']} s, p95 "
        f"{measures['latency_p95_ms']['value']} ms, health under saturation "
        f"{measures['health_latency_saturated_seconds']['value']} s, sustainable "
        f"{measures['sustainable_rps']['value']} req/s; for "
        f"{report['plan_fit']['target_rps']} req/s: {recommendation}"
    ]
    lines += [
        f"note: {sentence} (the figure is marked host_busy in reports/gate.json)"
        for sentence in report.get("host_busy", [])
    ]
    return lines


def refused_verdict(
    settings: GateParams | None, candidate_sha256: str | None, reason: str
) -> GateVerdict:
    """The same shape when the service never ran (refused, or no group could be made); with no
    settings (params.yaml itself refused) only the reason."""
    if settings is None:
        return completed({"reason": reason, "measures": {}}, None, candidate_sha256, None)
    plan = settings.target_plan
    rows = [
        {
            **listed.row(name),
            "fits": False,
            "why": "not measured: " + reason,
            "workers": 0,
            "instances": 0,
        }
        for name, listed in settings.plans.items()
    ]
    report = {
        "plan": plan.row(settings.plan),
        "limits": {
            "memory": {"limit_mb": plan.memory_mb, "enforced": False, "backend": "none"},
            "cpu": {"share": plan.cpu_share, "enforced": False, "backend": "none"},
        },
        "measures": {},
        "series": {
            "memory": {"seconds": [], "usage_mb": []},
            "latency_ms": {"edges": [], "counts": []},
        },
        "plan_fit": {"target_rps": float(settings.target_rps), "plans": rows, "recommended": None},
        "reason": reason,
    }
    return completed(report, settings, candidate_sha256, None)
