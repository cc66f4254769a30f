"""The gate's charts: cold start, latency, memory and plan fit, base beside candidate.

Each limit is a line on the axis that holds its unit, labelled where it is drawn; the axes
reach past every limit they show, or say in words that a limit lies above them.
"""

import itertools
from typing import Any

from pipeline.report.drawing import (
    BASE,
    CANDIDATE,
    GOOD,
    LIMIT,
    THRESHOLD,
    Chart,
    encode,
    legend_below,
    new_figure,
)
from pipeline.report.figures import dig, fmt, is_number
from pipeline.report.model import ReleaseReport

# A limit further above the data than this many times its top is named, not drawn: drawing it
# would squash the data into the bottom of the chart.
OFF_SCALE_FACTOR = 3.0


def measure(gate: dict[str, Any], name: str) -> dict[str, Any]:
    return dig(gate, ("measures", name)) or {}


def limit_label(axes, value: float, text: str, color: str, vertical: bool) -> None:
    """A limit line with its label written beside it, inside the axes."""
    if vertical:
        axes.axvline(value, color=color, linestyle="--", linewidth=1.5)
        axes.annotate(
            text,
            (value, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -3),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=8,
            color=color,
            rotation=90,
        )
    else:
        axes.axhline(value, color=color, linestyle="--", linewidth=1.5)
        axes.annotate(
            text,
            (0.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )


def cold_start_chart(report: ReleaseReport) -> Chart:
    title = "Cold start: seconds until the service answers health, against its limit"
    candidate = measure(report.gate, "cold_start_seconds")
    if not is_number(candidate.get("value")):
        return Chart(title, None, "the gate's verdict has no cold start")
    rows = [("candidate", candidate["value"], CANDIDATE)]
    base_value = measure(report.base_gate, "cold_start_seconds").get("value")
    if report.base and is_number(base_value):
        rows.insert(0, (report.base.name, base_value, BASE))
    figure, axes = new_figure()
    names = [name for name, _, _ in rows]
    values = [value for _, value, _ in rows]
    axes.barh(names, values, color=[color for _, _, color in rows], height=0.5)
    for index, value in enumerate(values):
        axes.annotate(
            f"{fmt(value)} s",
            (value, index),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    threshold = candidate.get("threshold")
    top = max(values)
    if is_number(threshold):
        limit_label(axes, threshold, f"limit {fmt(threshold)} s", LIMIT, vertical=True)
        top = max(top, threshold)
    axes.set_xlim(0, top * 1.25)
    axes.set_xlabel("seconds")
    axes.invert_yaxis()
    return Chart(title, encode(figure))


def latency_chart(report: ReleaseReport) -> Chart:
    title = "Latency of the gate's requests, with the p95 and p99 limits"
    histogram = dig(report.gate, ("series", "latency_ms")) or {}
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if len(edges) != len(counts) + 1 or not counts:
        return Chart(title, None, "the gate's verdict has no latency histogram (series)")
    figure, axes = new_figure()
    widths = [right - left for left, right in itertools.pairwise(edges)]
    axes.bar(
        edges[:-1],
        counts,
        width=widths,
        align="edge",
        color=CANDIDATE,
        edgecolor="white",
        label="candidate",
    )
    base = dig(report.base_gate, ("series", "latency_ms")) or {}
    if report.base and len(base.get("edges") or []) == len(base.get("counts") or []) + 1:
        axes.stairs(
            base["counts"], base["edges"], color=BASE, linewidth=1.5, label=report.base.name
        )
    right = edges[-1]
    for name, color in (("latency_p95_ms", LIMIT), ("latency_p99_ms", THRESHOLD)):
        judged = measure(report.gate, name)
        threshold, label = judged.get("threshold"), name.split("_")[1]
        if is_number(threshold):
            limit_label(axes, threshold, f"{label} limit {fmt(threshold)} ms", color, vertical=True)
            right = max(right, threshold)
        if is_number(judged.get("value")):
            axes.plot(
                [judged["value"]],
                [max(counts) * 1.04],
                "v",
                color=color,
                label=f"{label} {fmt(judged['value'])} ms",
            )
    # The bins are log-spaced (latencies span decades under a quota): so is the axis.
    axes.set_xscale("log")
    axes.set_xlim(edges[0] * 0.9, right * 1.3)
    axes.set_ylim(0, max(counts) * 1.12)
    axes.set_xlabel("milliseconds (log scale)")
    axes.set_ylabel("requests")
    legend_below(figure)
    return Chart(title, encode(figure))


def memory_chart(report: ReleaseReport) -> Chart:
    title = "Memory of the service's cgroup during the gate, against the budget"
    series = dig(report.gate, ("series", "memory")) or {}
    seconds, usage = series.get("seconds") or [], series.get("usage_mb") or []
    if not seconds or len(seconds) != len(usage):
        return Chart(title, None, "the gate's verdict has no memory time series (series)")
    figure, axes = new_figure()
    base_series = dig(report.base_gate, ("series", "memory")) or {}
    top = max(usage)
    if base_series.get("seconds") and report.base:
        axes.plot(
            base_series["seconds"], base_series["usage_mb"], color=BASE, label=report.base.name
        )
        top = max(top, *base_series["usage_mb"])
    axes.plot(seconds, usage, color=CANDIDATE, linewidth=2, label="candidate")
    # The budget is the gate's limit on the peak; the plan's memory is where the kernel kills.
    budget = measure(report.gate, "worst_case_memory_mb").get("threshold")
    budget = (
        budget if is_number(budget) else measure(report.gate, "peak_memory_mb").get("threshold")
    )
    plan_mb = dig(report.gate, ("limits", "memory", "limit_mb"))
    shown = []
    for value, text, color in (
        (budget, "budget", LIMIT),
        (plan_mb, "plan memory", THRESHOLD),
    ):
        if not is_number(value):
            continue
        if value <= top * OFF_SCALE_FACTOR:
            limit_label(axes, value, f"{text} {fmt(value)} MB", color, vertical=False)
            top = max(top, value)
        else:
            shown.append(f"{text} {fmt(value)} MB")
    if shown:
        axes.annotate(
            "above the chart: " + ", ".join(shown),
            (1.0, 1.0),
            xycoords="axes fraction",
            xytext=(-4, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=8,
            color=LIMIT,
        )
    axes.set_ylim(0, top * 1.3)
    axes.set_xlabel("seconds since the service started")
    axes.set_ylabel("MB")
    legend_below(figure)
    return Chart(title, encode(figure))


def plan_fit_chart(report: ReleaseReport) -> Chart:
    title = "Plan fit: monthly cost of each plan at the target load"
    plan_fit = report.gate.get("plan_fit") or {}
    plans = plan_fit.get("plans") or []
    if not plans:
        return Chart(title, None, "the gate's verdict has no plan fit")
    recommended = (plan_fit.get("recommended") or {}).get("plan")
    figure, axes = new_figure()
    names = [plan.get("name", "?") for plan in plans]
    costs = [(plan.get("price_usd_month") or 0) * (plan.get("instances") or 1) for plan in plans]
    colors = [GOOD if plan.get("fits") else BASE for plan in plans]
    axes.barh(names, costs, color=colors, height=0.5)
    # The bars use the left third; each plan's words start past it, clear of axis and bars.
    top = max([*costs, 1])
    axes.set_xlim(0, top * 3)
    for index, (plan, cost) in enumerate(zip(plans, costs, strict=True)):
        if plan.get("fits"):
            text = f"${fmt(cost)}: {fmt(plan.get('workers'))} worker(s) x "
            text += f"{fmt(plan.get('instances'))} instance(s)"
        else:
            text = f"does not fit: {plan.get('why', '')}"
        if plan.get("name") == recommended:
            text = "recommended, " + text
        axes.annotate(
            text[:58],
            (0.36, index),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=8,
            fontweight="bold" if plan.get("name") == recommended else "normal",
        )
        axes.plot([cost], [index], "o", color=colors[index])
    axes.set_xticks([tick for tick in axes.get_xticks() if 0 <= tick <= top])
    axes.set_xlabel(f"USD per month for {fmt(plan_fit.get('target_rps'))} requests/s")
    axes.invert_yaxis()
    return Chart(title, encode(figure))
