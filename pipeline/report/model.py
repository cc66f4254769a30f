"""What the release report says: every gate's verdict and key figure, base -> candidate.

`build_report` reads the candidate's reports on disk and, with a base ref, those committed
there; the markdown and html pages (report.markdown, report.html) render what it returns.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.paths import Workspace
from pipeline.report.figures import FigureRow, failure_reasons, figure_rows
from pipeline.report.sources import (
    STAGES,
    Reports,
    base_reports,
    candidate_reports,
    git,
)
from pipeline.summary import deploys, verdict_rows


@dataclass
class VerdictLine:
    """One stage's verdict for the candidate (summary's own words) and the base's."""

    stage: str
    verdict: str
    detail: str
    base_verdict: str | None = None


@dataclass
class ReleaseReport:
    """Everything both renderings show, computed once."""

    candidate: Reports
    base: Reports | None
    base_commit: str | None
    verdicts: list[VerdictLine]
    figures: list[FigureRow]
    failures: list[tuple[str, str]]
    deployment: str = ""  # the plan render.yaml deploys, against the one the gate passed
    generated_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    )

    @property
    def overall(self) -> str:
        """PASSED when every gate passed for this candidate, FAILED when one failed."""
        words = [line.verdict for line in self.verdicts]
        if words and all(word == "PASSED" for word in words):
            return "PASSED"
        return "FAILED" if "FAILED" in words or self.failures else "NOT READY"

    @property
    def gate(self) -> dict[str, Any]:
        return self.candidate.verdict("gate")

    @property
    def base_gate(self) -> dict[str, Any]:
        return self.base.verdict("gate") if self.base else {}


def base_verdict_word(base: Reports | None, stage: str) -> str | None:
    if base is None:
        return None
    verdict = base.verdicts.get(stage)
    if verdict is None:
        return "new"
    return "PASSED" if verdict.get("passed") else "FAILED"


def build_report(workspace: Workspace, base_ref: str | None = None) -> ReleaseReport:
    """Read the candidate's reports and, if given, the base's; compare them."""
    candidate = candidate_reports(workspace)
    base = base_reports(workspace, base_ref) if base_ref else None
    base_commit = None
    if base_ref:
        base_commit = git(workspace.root, "rev-parse", "--short=8", base_ref).stdout.strip()
    known = {stage: (verdict, detail) for stage, verdict, detail in verdict_rows(workspace)}
    verdicts = [
        VerdictLine(stage, *known.get(stage, ("not run", "")), base_verdict_word(base, stage))
        for stage in STAGES
    ]
    return ReleaseReport(
        candidate=candidate,
        base=base,
        base_commit=base_commit,
        verdicts=verdicts,
        figures=figure_rows(candidate, base),
        failures=failure_reasons(candidate),
        deployment=deployment_sentence(workspace, candidate.verdict("gate")),
    )


def deployment_sentence(workspace: Workspace, gate: dict[str, Any]) -> str:
    """The plan the gate passed and what render.yaml deploys, as a sentence; "" without a plan."""
    if not (gate or {}).get("plan"):
        return ""
    words = deploys(workspace, gate)
    return f"Gated on plan {gate['plan']['name']}; {words}." if words else ""
