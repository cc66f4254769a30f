"""Each figure of a release, base -> candidate: its change and whether it moved toward its limit."""

import math
from dataclasses import dataclass
from typing import Any

from pipeline.report.sources import STAGES, Reports

RULE_SYMBOLS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">", "==": "="}

# Figures a reviewer reads that no gate judges: (stage, name, path in the verdict, scale).
CONTEXT_FIGURES = (
    ("convert", "tflite_mb", ("sizes_bytes", "tflite"), 1e-6),
    ("convert", "op_count", ("op_count",), 1),
    ("gate", "latency_p50_ms", ("figures", "latency_p50_ms"), 1),
    ("gate", "workers_that_fit", ("capacity", "workers_that_fit"), 1),
)


def fmt(value: Any) -> str:
    """A figure with its significant digits: 4.325e-08, 0.875, 709.5, 12; never 0.0 for 4e-08."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return "0" if value == 0 else f"{value:.4g}"
    return str(value)


def fmt_change(base: Any, candidate: Any) -> str:
    """`+0.22 (+2.9%)`: the difference, and how much that is of the base."""
    if not is_number(base) or not is_number(candidate):
        return ""
    change = candidate - base
    if change == 0:
        return "0"
    text = f"{change:+.3g}"
    if base != 0:
        ratio = candidate / base
        # Past ten times, a percentage (+12602.3%) reads worse than the factor (127x).
        text += f" ({ratio:.3g}x)" if abs(ratio) >= 10 else f" ({change / abs(base):+.1%})"
    return text


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def dig(verdict: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(verdict, dict) or key not in verdict:
            return None
        verdict = verdict[key]
    return verdict


def headroom(value: float, rule: str, threshold: float) -> float:
    """How far `value` is inside its limit (negative: past it)."""
    if rule in ("<=", "<"):
        return threshold - value
    if rule in (">=", ">"):
        return value - threshold
    return -abs(value - threshold)


@dataclass(frozen=True)
class FigureRow:
    """One figure of one stage; `base` is None where the base has no such figure."""

    stage: str
    name: str
    candidate: Any
    base: Any = None
    rule: str | None = None
    threshold: Any = None
    passed: bool | None = None

    @property
    def limit(self) -> str:
        if self.rule is None or self.threshold is None:
            return ""
        return f"{RULE_SYMBOLS.get(self.rule, self.rule)} {fmt(self.threshold)}"

    @property
    def change(self) -> str:
        return fmt_change(self.base, self.candidate)

    @property
    def direction(self) -> str:
        """ "toward limit", "away from limit", "unchanged", "past limit", or "" (not judged)."""
        if self.passed is False:
            return "past limit"
        judged = self.rule is not None and is_number(self.threshold)
        if not judged or not is_number(self.base) or not is_number(self.candidate):
            return ""
        before = headroom(self.base, self.rule, self.threshold)
        after = headroom(self.candidate, self.rule, self.threshold)
        if after < before:
            return "toward limit"
        return "away from limit" if after > before else "unchanged"


def measure_rows(stage: str, candidate: dict, base: dict) -> list[FigureRow]:
    """Every judged measure of the stage, the candidate's order first, then the base's own."""
    measures, base_measures = candidate.get("measures") or {}, base.get("measures") or {}
    rows = []
    for name in [*measures, *(name for name in base_measures if name not in measures)]:
        measure, before = measures.get(name, {}), base_measures.get(name, {})
        rows.append(
            FigureRow(
                stage=stage,
                name=name,
                candidate=measure.get("value"),
                base=before.get("value"),
                rule=measure.get("rule", before.get("rule")),
                threshold=measure.get("threshold", before.get("threshold")),
                passed=measure.get("passed"),
            )
        )
    return rows


def context_rows(stage: str, candidate: dict, base: dict) -> list[FigureRow]:
    """Unjudged figures worth a glance: size, accuracy, median latency, capacity."""
    rows = []
    for figure_stage, name, path, scale in CONTEXT_FIGURES:
        values = [dig(verdict, path) for verdict in (candidate, base)]
        if figure_stage == stage and any(value is not None for value in values):
            scaled = [v * scale if is_number(v) and scale != 1 else v for v in values]
            rows.append(FigureRow(stage=stage, name=name, candidate=scaled[0], base=scaled[1]))
    if stage == "parity":
        accuracy, base_accuracy = candidate.get("accuracy") or {}, base.get("accuracy") or {}
        for model in [*accuracy, *(m for m in base_accuracy if m not in accuracy)]:
            rows.append(
                FigureRow(
                    stage=stage,
                    name=f"accuracy_{model}",
                    candidate=accuracy.get(model),
                    base=base_accuracy.get(model),
                )
            )
    return rows


def figure_rows(candidate: Reports, base: Reports | None) -> list[FigureRow]:
    """Every figure of every stage, in pipeline order: judged measures, then context."""
    rows = []
    for stage in STAGES:
        now, before = candidate.verdict(stage), base.verdict(stage) if base else {}
        rows += measure_rows(stage, now, before) + context_rows(stage, now, before)
    return rows


def failure_reasons(candidate: Reports) -> list[tuple[str, str]]:
    """(stage, why) for each stage that did not pass: its reason, then each failed measure."""
    reasons = []
    for stage in STAGES:
        verdict = candidate.verdicts.get(stage)
        if not verdict or verdict.get("passed"):
            continue
        if verdict.get("reason"):
            reasons.append((stage, str(verdict["reason"])))
        for name, measure in (verdict.get("measures") or {}).items():
            if not measure.get("passed", True):
                limit = f"{measure.get('rule', '')} {fmt(measure.get('threshold'))}"
                reasons.append((stage, f"{name} {fmt(measure.get('value'))} (needs {limit})"))
        if not reasons or reasons[-1][0] != stage:
            reasons.append((stage, "did not pass (the verdict gives no reason)"))
    return reasons
