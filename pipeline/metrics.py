"""Compact metrics: the few figures a person compares, in the files DVC reads as metrics.

Each gate stage's full verdict (reports/<stage>.json) holds everything, for the tools. DVC
prints one column per key across all its metrics files, and `dvc exp show` prefixes a key
that is in two files with the file's path; so the metrics files hold few keys, each in one
file only (`passed` aside, which shows only when a verdict flips):

- reports/metrics/<stage>.json: `passed`, each key figure; convert's also the candidate's
  short `sha`, the gate's the plan it measured on (`ran_on`) and the plan its plan fit
  recommends (`fit`): two runs measured on different plans show it in a column;
- reports/limits/<stage>.json: the same figure keys with rule and threshold ("<= 450"), an
  output rather than a metric (the keys would collide); `dvc metrics show -R reports/metrics
  reports/limits` prints the limits as rows under the values.

Probability differences are in parts per million (`_ppm`): DVC rounds to 5 decimals, which
prints a difference of 3.9e-06 as 0.0; in ppm it is 3.93. Every value keeps 3 significant
digits.
"""

import math
from pathlib import Path
from typing import Any

SHORT_SHA = 8
SIGNIFICANT_DIGITS = 3


def _gate_plan(verdict: dict[str, Any]) -> dict[str, Any]:
    """The plan the gate measured on, and its plan fit's recommendation when it made one."""
    plans = {}
    if (verdict.get("plan") or {}).get("name"):
        plans["ran_on"] = verdict["plan"]["name"]
    fit = verdict.get("plan_fit") or {}
    if "recommended" in fit:
        plans["fit"] = (fit["recommended"] or {}).get("plan") or "none"
    return plans


# Per stage: the verdict's measure name -> (compact key, scale). DVC prints every key of every
# file as a column 4 spaces apart, so this list is what keeps `dvc metrics show` within 120
# columns; the release report (pipeline/report/) shows every measure. A failed measure that is
# not listed is added under its own name, so a failure is never missing from the table.
KEY_MEASURES: dict[str, dict[str, tuple[str, float]]] = {
    "parity": {
        "max_abs_diff": ("diff_ppm", 1e6),
        "top1_agreement": ("agree", 1.0),
    },
    "gate": {
        "peak_memory_mb": ("peak_mb", 1.0),
        "cold_start_seconds": ("cold_s", 1.0),
        "latency_p95_ms": ("p95_ms", 1.0),
    },
}


def significant(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """A float rounded to `digits` significant digits (4.3250106e-08 -> 4.33e-08); others as is."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _key_measures(stage: str, verdict: dict[str, Any]) -> list[tuple[str, str, float, dict]]:
    """(verdict name, compact key, scale, measure) for the figures this stage's table shows."""
    measures = verdict.get("measures") or {}
    wanted = KEY_MEASURES.get(stage, {})
    chosen = [(name, *wanted[name], measures[name]) for name in wanted if name in measures]
    if measures and not chosen:
        # A verdict whose measures we do not know by name: show them all as they are named.
        return [(name, name, 1.0, measure) for name, measure in measures.items()]
    chosen += [
        (name, name, 1.0, measure)
        for name, measure in measures.items()
        if name not in wanted and not measure.get("passed", True)
    ]
    return chosen


def _scaled(value: Any, scale: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return significant(value * scale) if scale != 1.0 else significant(value)


def compact(stage: str, verdict: dict[str, Any]) -> dict[str, Any]:
    """The figures a person compares for one stage: passed, key figures, sha (convert)."""
    figures: dict[str, Any] = {"passed": bool(verdict.get("passed"))}
    if stage == "convert" and verdict.get("candidate_sha256"):
        figures["sha"] = str(verdict["candidate_sha256"])[:SHORT_SHA]
    for _, key, scale, measure in _key_measures(stage, verdict):
        figures[key] = _scaled(measure.get("value"), scale)
    if stage == "gate":
        figures.update(_gate_plan(verdict))
    return figures


def limits(stage: str, verdict: dict[str, Any]) -> dict[str, str]:
    """The same keys as `compact`, each with its rule and threshold ("<= 450")."""
    return {
        key: f"{measure.get('rule', '')} {_scaled(measure.get('threshold'), scale):g}".strip()
        for _, key, scale, measure in _key_measures(stage, verdict)
        if isinstance(measure.get("threshold"), int | float)
    }


def metrics_path(reports_dir: Path, stage: str) -> Path:
    return reports_dir / "metrics" / f"{stage}.json"


def limits_path(reports_dir: Path, stage: str) -> Path:
    return reports_dir / "limits" / f"{stage}.json"


def stages_with_limits() -> tuple[str, ...]:
    """Stages whose verdict has thresholds, so dvc.yaml declares a limits file for them."""
    return tuple(KEY_MEASURES)
