"""Generated blocks of the docs: tables a benchmark wrote, and tables built from the verdicts.

A block sits between `<!-- name:start -->` and `<!-- name:end -->`. Each function returns the
block's markdown, or None when its source file is absent (a benchmark not run on this machine).
"""

from collections.abc import Callable
from typing import Any

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.report.doc_layout import layout_block, modules_block
from pipeline.summary import deploys, failure_detail, plan_fit_in_words
from pipeline.verdicts import GATE_STAGES, read_json

# Block name -> the markdown a command writes under reports/, and the command.
COPIED = {
    "quantization": ("quantization.md", "make quantization"),
    "benchmark": ("benchmark.md", "make bench"),
    "servers": ("servers.md", "make bench-servers"),
    "bench-peers": ("bench/peers.md", "make bench-peers"),
    "batching": ("batching_figures.md", "make bench-batching"),
    "gate-steadiness": ("gate_steadiness.md", "make gate-steadiness"),
}


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _report(workspace: Workspace, name: str) -> dict | None:
    path = workspace.reports_dir / f"{name}.json"
    return read_json(path) if path.is_file() else None


def summary_block(workspace: Workspace) -> str | None:
    """What `python -m pipeline.summary` prints while the committed verdicts are current."""
    reports = {stage: _report(workspace, stage) for stage in GATE_STAGES}
    if not all(reports.values()):
        return None
    rows = []
    for stage, report in reports.items():
        verdict = "PASSED" if report.get("passed") else "FAILED"
        sha = report.get("candidate_sha256", "")[:12]
        detail = f"candidate {sha}" if report.get("passed") else failure_detail(report)
        if stage == "gate" and "plan_fit" in report:
            detail = f"{detail}; {plan_fit_in_words(report)}; {deploys(workspace, report)}"
        rows.append((stage, verdict, detail))
    width = max(len(stage) for stage, _, _ in rows)
    lines = [f"{'stage':<{width}}  verdict  detail"]
    lines += [f"{stage:<{width}}  {verdict:<7}  {detail}" for stage, verdict, detail in rows]
    return "```text\n" + "\n".join(lines) + "\n```\n\n" + where_it_ran(reports) + "\n"


def where_it_ran(reports: dict[str, dict]) -> str:
    """The machine and date of the run the verdicts record: whose figures these are."""
    hosts = {
        stage: (report.get("produced_on") or {}).get("host") for stage, report in reports.items()
    }
    machine = reports["gate"].get("machine") or {}
    gate_machine = (
        f"host `{hosts['gate']}` ({machine.get('cpu_model', 'CPU unrecorded')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('cgroup_backend', '?')})"
    )
    if len(set(hosts.values())) == 1:
        *first, last = hosts
        where = f"{', '.join(first)} and {last} on {gate_machine}"
    else:
        where = ", ".join(
            f"{stage} on host `{host}`" for stage, host in hosts.items() if stage != "gate"
        )
        where += f", gate on {gate_machine}"
    measured = machine.get("measured_at", "an unrecorded time")
    return f"The run these verdicts record: {where}; the gate measured at {measured}.\n"


def metrics_block(workspace: Workspace) -> str | None:
    """Every figure `dvc metrics show` lists, with the limit `reports/limits/` gives it."""
    metrics_dir, limits_dir = workspace.reports_dir / "metrics", workspace.reports_dir / "limits"
    if not metrics_dir.is_dir():
        return None
    rows = []
    for stage in GATE_STAGES:
        path = metrics_dir / f"{stage}.json"
        if not path.is_file():
            continue
        limits_path = limits_dir / f"{stage}.json"
        limits = read_json(limits_path) if limits_path.is_file() else {}
        for name, value in read_json(path).items():
            limit = limits.get(name, "")
            rows.append([f"`reports/metrics/{stage}.json`", f"`{name}`", number(value), limit])
    return table(["file", "figure", "value", "limit"], rows)


def parity_block(workspace: Workspace) -> str | None:
    """Parity's measures: value, rule and threshold, and the outcome."""
    report = _report(workspace, "parity")
    if report is None:
        return None
    rows = [
        [
            f"`{name}`",
            f"{measure['value']:.4g}",
            f"{measure['rule']} {measure['threshold']}",
            "passed" if measure["passed"] else "FAILED",
        ]
        for name, measure in report.get("measures", {}).items()
    ]
    return table(["measure", "value", "rule", "outcome"], rows)


def gate_measures_block(workspace: Workspace) -> str | None:
    """The gate's judged measures, as the committed verdict records them."""
    report = _report(workspace, "gate")
    if report is None:
        return None
    rows = [
        [
            f"`{name}`",
            number(measure["value"]),
            f"{measure['rule']} {measure['threshold']}",
            "passed" if measure["passed"] else "FAILED",
        ]
        for name, measure in report.get("measures", {}).items()
    ]
    return table(["measure", "value", "rule", "outcome"], rows)


def worst_case_block(workspace: Workspace) -> str | None:
    """Each worst-case kind the gate sent: the body it read, the bursts and the answers."""
    report = _report(workspace, "gate")
    worst = (report or {}).get("figures", {}).get("worst_case")
    if not worst:
        return None
    rows = [
        [
            kind,
            f"{sent['body_bytes'] / 1e6:.1f}",
            sent.get("bursts", ""),
            ", ".join(f"{status}: {count}" for status, count in sent.get("answers", {}).items()),
            number(sent.get("seconds", "")),
        ]
        for kind, sent in worst.get("requests", {}).items()
    ]
    header = ["kind", "body MB", "bursts", "answers (status: count)", "seconds"]
    return table(header, rows)


def plan_fit_block(workspace: Workspace) -> str | None:
    """Plan fit from the committed gate verdict: each plan, whether it fits and why."""
    report = _report(workspace, "gate")
    fit = (report or {}).get("plan_fit")
    if not fit:
        return None
    rows = [
        [
            plan["name"],
            f"{plan['memory_mb']} MB",
            number(plan["cpu_share"]),
            f"${plan['price_usd_month']}",
            "yes" if plan["fits"] else "no",
            f"{plan.get('workers', '-')} x {plan.get('instances', '-')}",
            plan["why"],
        ]
        for plan in fit["plans"]
    ]
    header = ["plan", "memory", "CPU", "per month", "fits", "workers x instances", "why"]
    return table(header, rows)


def plans_block(workspace: Workspace) -> str | None:
    """The plans the gate can emulate, from params.yaml's gate.plans."""
    rows = [
        [
            f"`{name}`",
            f"{plan.memory_mb} MB",
            number(plan.cpu_share),
            plan.price_usd_month,
            plan.max_instances,
            f"{plan.max_peak_memory_mb} MB",
        ]
        for name, plan in load_params(workspace).gate.plans.items()
    ]
    header = [
        "plan",
        "memory",
        "CPU share",
        "USD / month / instance",
        "instances at most",
        "gate's budget (`max_peak_memory_mb`)",
    ]
    return table(header, rows)


def copied_block(name: str) -> Callable[[Workspace], str | None]:
    file_name, _ = COPIED[name]

    def read(workspace: Workspace) -> str | None:
        path = workspace.reports_dir / file_name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return read


BLOCKS: dict[str, Callable[[Workspace], str | None]] = {
    **{name: copied_block(name) for name in COPIED},
    "summary": summary_block,
    "metrics": metrics_block,
    "parity-measures": parity_block,
    "gate-measures": gate_measures_block,
    "worst-case": worst_case_block,
    "plan-fit": plan_fit_block,
    "plans": plans_block,
    "layout": layout_block,
    "modules": modules_block,
}


def source_hint(name: str) -> str:
    """Where a block's source comes from, for the message when it is absent."""
    if name in COPIED:
        file_name, command = COPIED[name]
        return f"no reports/{file_name} (run `{command}` first)"
    return "its report under reports/ is missing (run `dvc repro`)"
