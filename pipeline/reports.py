"""Verdicts as data: each measure with its value, threshold and outcome, written atomically."""

import json
import os
import re
from pathlib import Path
from typing import Any

from pipeline.metrics import compact, limits, limits_path, metrics_path, stages_with_limits


def measure(value: float, threshold: float, passed: bool, rule: str) -> dict[str, Any]:
    """One judged figure; `rule` says how value and threshold compare (e.g. "<=")."""
    return {"value": value, "threshold": threshold, "rule": rule, "passed": bool(passed)}


def at_most(value: float, threshold: float) -> dict[str, Any]:
    return measure(value, threshold, value <= threshold, "<=")


def at_least(value: float, threshold: float) -> dict[str, Any]:
    return measure(value, threshold, value >= threshold, ">=")


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so no reader sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def write_verdict(workspace, stage: str, verdict: dict[str, Any]) -> None:
    """reports/<stage>.json: a stage's whole verdict, the one place every gate stage writes it.

    Everything a verdict must carry beyond the stage's own measures (what it judged, in what
    form DVC and people read it) is added here, once, for every stage.
    """
    write_json(workspace.report_path(stage), verdict)
    # What DVC reads as metrics: the few figures a person compares (pipeline/metrics.py).
    write_json(metrics_path(workspace.reports_dir, stage), compact(stage, verdict))
    if stage in stages_with_limits():
        write_json(limits_path(workspace.reports_dir, stage), limits(stage, verdict))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def replace_between_markers(document_path: Path, name: str, content: str) -> bool:
    """Put generated `content` between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if not document_path.exists():
        return False
    text = document_path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return False
    document_path.write_text(
        pattern.sub(lambda _: f"{start}\n{content}{end}", text), encoding="utf-8"
    )
    return True
