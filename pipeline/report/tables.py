"""The release report's tables and sentences as plain text, shared by markdown and HTML."""

from dataclasses import dataclass, field
from typing import Any

from pipeline.gate.machine import measured_elsewhere
from pipeline.gate.plan_fit import recommendation_in_words
from pipeline.report.figures import fmt
from pipeline.report.model import ReleaseReport


@dataclass
class Table:
    """Headers, rows of text, and which rows hold a failed figure (marked by each renderer)."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)

    def add(self, row: list[Any], failed: bool = False) -> None:
        self.rows.append(["" if value is None else str(value) for value in row])
        self.failed.append(failed)


def title(report: ReleaseReport) -> str:
    return f"Release report: {report.overall}"


def subtitle(report: ReleaseReport) -> str:
    sha = report.candidate.candidate_sha256
    candidate = f"Candidate {sha[:12]}" if sha else "No candidate verdict"
    if report.base:
        against = f"against {report.base.name} ({report.base_commit})"
    else:
        against = "no base given: the candidate's figures alone"
    return f"{candidate}, {against}. Generated {report.generated_at}."


def movement(report: ReleaseReport) -> str:
    """One line: how many judged figures moved toward their limit, away, or are past it."""
    counts: dict[str, int] = {}
    for row in report.figures:
        if row.direction:
            counts[row.direction] = counts.get(row.direction, 0) + 1
    if not counts:
        return ""
    order = ("past limit", "toward limit", "away from limit", "unchanged")
    parts = [f"{counts[word]} {word}" for word in order if counts.get(word)]
    return "Judged figures: " + ", ".join(parts) + "."


def verdict_table(report: ReleaseReport) -> Table:
    table = Table(["stage", "verdict", "detail"] + ([report.base.name] if report.base else []))
    for line in report.verdicts:
        row = [line.stage, line.verdict, line.detail]
        table.add(row + ([line.base_verdict] if report.base else []), line.verdict == "FAILED")
    return table


def figure_table(report: ReleaseReport) -> Table:
    """Each figure base -> candidate with its change and its direction against its limit."""
    headers = ["stage", "figure", "limit"]
    if report.base:
        headers += [report.base.name, "candidate", "change", "vs limit"]
    else:
        headers += ["candidate"]
    table = Table(headers)
    for row in report.figures:
        cells = [row.stage, row.name, row.limit]
        if report.base:
            base = fmt(row.base) if row.base is not None else "new"
            cells += [base, fmt(row.candidate), row.change, row.direction]
        else:
            cells.append(fmt(row.candidate))
        table.add(cells, row.passed is False)
    return table


def measured_where(gate: dict[str, Any], base_gate: dict[str, Any] | None = None) -> str:
    """measured_under, and what makes figures not comparable: a verdict measured on another
    machine, or a base measured on another plan than the candidate."""
    sentences = [measured_under(gate)]
    elsewhere = measured_elsewhere(gate) if gate else None
    if elsewhere:
        sentences.append(
            f"The candidate's gate verdict was NOT measured on this machine: {elsewhere}."
        )
    base_plan = ((base_gate or {}).get("plan") or {}).get("name")
    plan = (gate.get("plan") or {}).get("name")
    if base_plan and plan and base_plan != plan:
        sentences.append(
            f"Base and candidate were measured on different plans (base {base_plan}, candidate "
            f"{plan}): their timings and memory figures do not compare."
        )
    return " ".join(s for s in sentences if s)


def measured_under(gate: dict[str, Any]) -> str:
    """Where the gate measured: the plan, and how each limit was enforced."""
    plan, limits = gate.get("plan") or {}, gate.get("limits") or {}
    if not plan and not limits:
        if not gate.get("backend"):
            return ""
        enforced = "enforced" if gate.get("enforced") else "NOT enforced"
        return (
            f"Measured in a {fmt(gate.get('memory_limit_mb'))} MB memory group "
            f"({gate['backend']}, {enforced})."
        )

    def how(limit: dict[str, Any]) -> str:
        if not limit:
            return "not reported"
        state = "enforced" if limit.get("enforced") else "NOT enforced"
        return f"{state} by {limit.get('backend', 'unknown')}"

    return (
        f"Measured under the {plan.get('name', '?')} plan ({fmt(plan.get('memory_mb'))} MB, "
        f"{fmt(plan.get('cpu_share'))} CPU): memory {how(limits.get('memory') or {})}, "
        f"CPU {how(limits.get('cpu') or {})}."
    )


def recommendation(plan_fit: dict[str, Any]) -> str:
    recommended = plan_fit.get("recommended")
    if not recommended:
        return recommendation_in_words(plan_fit)
    return (
        f"{recommended.get('plan')}, {fmt(recommended.get('workers'))} worker(s) x "
        f"{fmt(recommended.get('instances'))} instance(s)"
    )


def plan_summary(report: ReleaseReport) -> str:
    plan_fit = report.gate.get("plan_fit")
    if not plan_fit:
        return "The gate's verdict has no plan fit." if report.gate else ""
    text = f"For {fmt(plan_fit.get('target_rps'))} requests/s: {recommendation(plan_fit)}"
    base_fit = report.base_gate.get("plan_fit")
    if report.base and base_fit:
        text += f" ({report.base.name}: {recommendation(base_fit)})"
    return text + "."


def plan_table(report: ReleaseReport) -> Table:
    table = Table(["plan", "memory", "CPU", "per month", "fits", "workers x instances", "why"])
    for plan in (report.gate.get("plan_fit") or {}).get("plans") or []:
        table.add(
            [
                plan.get("name"),
                f"{fmt(plan.get('memory_mb'))} MB",
                fmt(plan.get("cpu_share")),
                f"${fmt(plan.get('price_usd_month'))}",
                "yes" if plan.get("fits") else "no",
                f"{fmt(plan.get('workers'))} x {fmt(plan.get('instances'))}",
                plan.get("why", ""),
            ],
            not plan.get("fits"),
        )
    return table


FOOTNOTE = (
    "Full verdicts: reports/*.json. Charts: release.html, next to this file "
    "(in the pipeline workflow, the candidate's artifact)."
)
