"""Charts a pull-request comment shows inline: Mermaid `xychart-beta` blocks, which GitHub
renders in markdown with no image to host. Base beside candidate, the limit as a line."""

from typing import Any

from pipeline.report.figures import dig, fmt, is_number
from pipeline.report.model import ReleaseReport

# A limit further above the bars than this many times their top is named in the title instead
# of drawn: drawing it would flatten the bars.
OFF_SCALE_FACTOR = 3.0


def number(value: float) -> str:
    return f"{value:.4g}"


def xychart(title: str, unit: str, bars: list[tuple[str, float]], limits: list[Any]) -> list[str]:
    """One chart: a bar per (label, value), and a line at each bar's limit where it has one."""
    top = max(value for _, value in bars)
    known = [limit for limit in limits if is_number(limit)]
    # One line through every bar's limit, when the nearest limit is close enough to draw.
    draw = len(known) == len(limits) and known and min(known) <= top * OFF_SCALE_FACTOR
    named = ", ".join(fmt(limit) for limit in sorted(set(known)))
    if draw:
        title += f" (line: limit {named} {unit})"
    elif known:
        title += f" (limit {named} {unit}, above the bars)"
    high = max([top, *(known if draw else [])]) * 1.2 or 1
    labels = ", ".join(f'"{label}"' for label, _ in bars)
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f'    y-axis "{unit}" 0 --> {number(high)}',
        f"    bar [{', '.join(number(value) for _, value in bars)}]",
    ]
    if draw:
        lines.append(f"    line [{', '.join(number(limit) for limit in limits)}]")
    return [*lines, "```"]


def measured(report: ReleaseReport, name: str) -> list[tuple[str, float, Any]]:
    """(who, value, limit) for base and candidate, where each has the measure."""
    rows = []
    for who, gate in (
        (report.base.name if report.base else "", report.base_gate),
        ("candidate", report.gate),
    ):
        judged = dig(gate, ("measures", name)) or {}
        if who and is_number(judged.get("value")):
            rows.append((who, judged["value"], judged.get("threshold")))
    return rows


def gate_charts(report: ReleaseReport) -> list[str]:
    """Cold start, latency and worst-case memory: the figures a reviewer of a model weighs."""
    lines: list[str] = []
    for name, title, unit in (
        ("cold_start_seconds", "Cold start", "s"),
        ("latency_p95_ms", "Latency p95 under load", "ms"),
        ("latency_p99_ms", "Latency p99 under load", "ms"),
        ("worst_case_memory_mb", "Worst-case memory peak", "MB"),
    ):
        rows = measured(report, name)
        if rows:
            bars = [(who, value) for who, value, _ in rows]
            lines += ["", *xychart(title, unit, bars, [limit for _, _, limit in rows])]
    return lines
