"""Verdicts as data: each measure with its value, threshold and outcome, written atomically."""

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

from pipeline.fingerprint import inputs_fingerprint
from pipeline.metrics import compact, limits, limits_path, metrics_path, stages_with_limits

# The stages that judge the candidate, in pipeline order: each writes reports/<stage>.json.
GATE_STAGES = ("convert", "parity", "gate")


def measure(value: float, threshold: float, passed: bool, rule: str) -> dict[str, Any]:
    """One judged figure; `rule` says how value and threshold compare (e.g. "<=")."""
    return {"value": value, "threshold": threshold, "rule": rule, "passed": bool(passed)}


def at_most(value: float, threshold: float) -> dict[str, Any]:
    return measure(value, threshold, value <= threshold, "<=")


def at_least(value: float, threshold: float) -> dict[str, Any]:
    return measure(value, threshold, value >= threshold, ">=")


def produced_where() -> dict[str, str | None]:
    """Where a verdict is being produced: this host, and the CI run when a GitHub runner."""
    run_id = os.environ.get("GITHUB_RUN_ID")
    ci_run = None
    if run_id:
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        repository = os.environ.get("GITHUB_REPOSITORY", "")
        attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "1")
        ci_run = f"{server}/{repository}/actions/runs/{run_id}/attempts/{attempt}"
    return {"host": platform.node(), "ci_run": ci_run}


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so no reader sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def write_verdict(workspace, stage: str, verdict: dict[str, Any]) -> None:
    """reports/<stage>.json: a stage's whole verdict, the one place every gate stage writes it.

    Everything a verdict must carry beyond the stage's own measures (what it judged, in what
    form DVC and people read it) is added here, once, for every stage: `inputs_fingerprint`
    names every dep (with DVC's md5) and param (with its value) of the stage in dvc.yaml, so
    a verdict can never speak for inputs it did not judge; `produced_on` says where it ran.
    """
    verdict = {
        **verdict,
        "inputs_fingerprint": inputs_fingerprint(workspace, stage),
        "produced_on": produced_where(),
    }
    write_json(workspace.report_path(stage), verdict)
    # What DVC reads as metrics: the few figures a person compares (pipeline/metrics.py).
    write_json(metrics_path(workspace.reports_dir, stage), compact(stage, verdict))
    if stage in stages_with_limits():
        write_json(limits_path(workspace.reports_dir, stage), limits(stage, verdict))
    if not verdict.get("passed") and stage in GATE_STAGES:
        # DVC stops at a failed stage and would leave the later ones' old PASSED in place for
        # `dvc metrics show` to print; a failure upstream leaves them nothing to speak for.
        for later in GATE_STAGES[GATE_STAGES.index(stage) + 1 :]:
            workspace.report_path(later).unlink(missing_ok=True)
            metrics_path(workspace.reports_dir, later).unlink(missing_ok=True)


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
