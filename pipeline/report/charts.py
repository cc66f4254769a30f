"""The release page's charts, drawn with matplotlib into PNGs inlined as base64 (no network),
once per content: with a cache folder, a page on the same figures (the rerun of a release that
failed or was killed, `make report` again) takes the charts drawn before instead of drawing
them again (about a second of CPU, matplotlib's import included)."""

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

from pipeline.report.drawing import HEIGHT_PX, WIDTH_PX, Chart
from pipeline.report.model import ReleaseReport

__all__ = ["HEIGHT_PX", "WIDTH_PX", "Chart", "all_charts"]
# The code that draws them: a change to it draws them anew.
CHART_CODE = ("charts.py", "drawing.py", "gate_charts.py", "parity_charts.py")
KEPT_IN_CACHE = 8


def content_key(report: ReleaseReport) -> str:
    """What the charts are drawn from: the report's figures, the drawing code, matplotlib."""
    data = dataclasses.asdict(report)
    data.pop("generated_at")  # the only part that changes from one page to the next
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode())
    digest.update(importlib.metadata.version("matplotlib").encode())
    for name in CHART_CODE:
        digest.update((Path(__file__).with_name(name)).read_bytes())
    return digest.hexdigest()


def draw_all(report: ReleaseReport) -> list[Chart]:
    # Imported here: they load matplotlib, which a cached page does without.
    from pipeline.report.gate_charts import (
        cold_start_chart,
        latency_chart,
        memory_chart,
        plan_fit_chart,
    )
    from pipeline.report.parity_charts import confidence_chart, per_class_chart

    return [
        per_class_chart(report),
        confidence_chart(report),
        cold_start_chart(report),
        latency_chart(report),
        memory_chart(report),
        plan_fit_chart(report),
    ]


def all_charts(report: ReleaseReport, cache_dir: Path | None = None) -> list[Chart]:
    """Every chart of the page; drawn once per content when `cache_dir` is given."""
    if cache_dir is None:
        return draw_all(report)
    path = cache_dir / f"{content_key(report)}.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        return [Chart(**chart) for chart in json.loads(path.read_text())]
    charts = draw_all(report)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([dataclasses.asdict(chart) for chart in charts]))
    os.replace(partial, path)
    for old in sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEPT_IN_CACHE]:
        old.unlink(missing_ok=True)
    return charts
