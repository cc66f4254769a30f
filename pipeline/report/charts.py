"""The release page's charts, drawn with matplotlib into PNGs inlined as base64 (no network)."""

from pipeline.report.drawing import HEIGHT_PX, WIDTH_PX, Chart
from pipeline.report.gate_charts import (
    cold_start_chart,
    latency_chart,
    memory_chart,
    plan_fit_chart,
)
from pipeline.report.model import ReleaseReport
from pipeline.report.parity_charts import confidence_chart, per_class_chart

__all__ = ["HEIGHT_PX", "WIDTH_PX", "Chart", "all_charts"]


def all_charts(report: ReleaseReport) -> list[Chart]:
    return [
        per_class_chart(report),
        confidence_chart(report),
        cold_start_chart(report),
        latency_chart(report),
        memory_chart(report),
        plan_fit_chart(report),
    ]
