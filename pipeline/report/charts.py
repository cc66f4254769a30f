"""The release page's charts, drawn with matplotlib into PNGs inlined as base64 (no network)."""

import base64
import io
import itertools
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the charts are files, even on a desktop
import matplotlib.pyplot as plt

from pipeline.report.figures import dig, fmt, is_number
from pipeline.report.model import ReleaseReport

WIDTH_PX, HEIGHT_PX, DPI = 540, 320, 100
CANDIDATE, BASE, LIMIT, THRESHOLD, GOOD = "#1f6feb", "#8c959f", "#cf222e", "#bf8700", "#1a7f37"


@dataclass(frozen=True)
class Chart:
    """A titled chart: a base64 PNG, or None and a note saying what data is missing."""

    title: str
    png_base64: str | None
    note: str = ""


def new_figure():
    figure, axes = plt.subplots(
        figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained"
    )
    axes.grid(alpha=0.3)
    return figure, axes


def encode(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def floats(rows: list[dict[str, str]], column: str) -> list[float]:
    return [float(row[column]) for row in rows]


def per_class_chart(report: ReleaseReport) -> Chart:
    title = "Top-1 agreement with Keras, per true class"
    rows = report.candidate.per_class
    if not rows:
        return Chart(title, None, "parity wrote no reports/parity_per_class.csv")
    label, value = list(rows[0])[:2]
    labels = [row[label] for row in rows]
    figure, axes = new_figure()
    axes.barh(labels, floats(rows, value), color=CANDIDATE, label="candidate")
    base_rows = {row[label]: row for row in (report.base.per_class or [])} if report.base else {}
    if base_rows and value in next(iter(base_rows.values())):
        shown = [
            (i, float(base_rows[name][value])) for i, name in enumerate(labels) if name in base_rows
        ]
        axes.plot(
            [v for _, v in shown], [i for i, _ in shown], "D", color=BASE, label=report.base.name
        )
    threshold = dig(
        report.candidate.verdict("parity"), ("measures", "min_class_agreement", "threshold")
    )
    if is_number(threshold):
        axes.axvline(threshold, color=LIMIT, linestyle="--", label=f"limit {fmt(threshold)}")
    axes.set_xlim(0, 1.02)
    axes.set_xlabel(value)
    axes.invert_yaxis()
    axes.legend(loc="lower left", fontsize=8)
    return Chart(title, encode(figure))


def confidence_chart(report: ReleaseReport) -> Chart:
    title = "Confidence of the top Keras class: Keras vs candidate"
    rows = report.candidate.confidence
    if not rows:
        return Chart(title, None, "parity wrote no reports/parity_confidence.csv")
    x_name, y_name = [name for name in rows[0] if name != "sample"][:2]
    figure, axes = new_figure()
    axes.plot([0, 1], [0, 1], color=BASE, linewidth=1, label="equal")
    axes.scatter(
        floats(rows, x_name),
        floats(rows, y_name),
        s=12,
        color=CANDIDATE,
        alpha=0.7,
        label=f"{len(rows)} held-out samples",
    )
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    axes.legend(loc="upper left", fontsize=8)
    return Chart(title, encode(figure))


def latency_chart(report: ReleaseReport) -> Chart:
    title = "Latency of the gate's requests"
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
        label="requests",
    )
    for name, color, style in (("latency_p95_ms", LIMIT, "--"), ("latency_p99_ms", THRESHOLD, ":")):
        measure = dig(report.gate, ("measures", name)) or {}
        if is_number(measure.get("value")):
            axes.axvline(
                measure["value"],
                color=color,
                linestyle=style,
                label=f"{name.split('_')[1]} {fmt(measure['value'])} ms "
                f"(limit {fmt(measure.get('threshold'))})",
            )
    axes.set_xlabel("milliseconds")
    axes.set_ylabel("requests")
    axes.legend(fontsize=8)
    return Chart(title, encode(figure))


def memory_limit_mb(gate: dict[str, Any]) -> Any:
    for path in (("limits", "memory", "limit_mb"), ("plan", "memory_mb"), ("memory_limit_mb",)):
        if is_number(dig(gate, path)):
            return dig(gate, path)
    return None


def memory_chart(report: ReleaseReport) -> Chart:
    title = "Memory of the service's cgroup during the gate, against the budget"
    series = dig(report.gate, ("series", "memory")) or {}
    seconds, usage = series.get("seconds") or [], series.get("usage_mb") or []
    if not seconds or len(seconds) != len(usage):
        return Chart(title, None, "the gate's verdict has no memory time series (series)")
    figure, axes = new_figure()
    base_series = dig(report.base_gate, ("series", "memory")) or {}
    if base_series.get("seconds") and report.base:
        axes.plot(
            base_series["seconds"], base_series["usage_mb"], color=BASE, label=report.base.name
        )
    axes.plot(seconds, usage, color=CANDIDATE, linewidth=2, label="candidate")
    limit = memory_limit_mb(report.gate)
    if limit is not None:
        axes.axhline(limit, color=LIMIT, label=f"budget {fmt(limit)} MB")
    threshold = dig(report.gate, ("measures", "peak_memory_mb", "threshold"))
    if is_number(threshold):
        axes.axhline(
            threshold, color=THRESHOLD, linestyle="--", label=f"max peak {fmt(threshold)} MB"
        )
    axes.set_ylim(0, max([*usage, limit or 0, threshold or 0]) * 1.1)
    axes.set_xlabel("seconds since the service started")
    axes.set_ylabel("MB")
    axes.legend(loc="lower right", fontsize=8)
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
    axes.barh(names, costs, color=colors)
    top = max([*costs, 1])
    for index, (plan, cost) in enumerate(zip(plans, costs, strict=True)):
        if plan.get("fits"):
            text = f"${fmt(cost)}: {fmt(plan.get('workers'))} worker(s) x "
            text += f"{fmt(plan.get('instances'))} instance(s)"
        else:
            text = f"does not fit: {plan.get('why', '')}"
        weight = "bold" if plan.get("name") == recommended else "normal"
        axes.text(cost + top * 0.02, index, text[:60], va="center", fontsize=8, fontweight=weight)
        axes.plot([0], [index], "o", color=colors[index])
    axes.set_xlim(0, top * 2.2)
    axes.set_xlabel(f"USD per month for {fmt(plan_fit.get('target_rps'))} requests/s")
    axes.invert_yaxis()
    return Chart(title, encode(figure))


def all_charts(report: ReleaseReport) -> list[Chart]:
    return [
        per_class_chart(report),
        confidence_chart(report),
        latency_chart(report),
        memory_chart(report),
        plan_fit_chart(report),
    ]
