"""The smoke check's report: each check, and the outcome a machine acts on.

Standard library only: the post-deploy workflow reads the report (checks/after_deploy.py) on a
runner with nothing installed.
"""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# A smoke check's outcome: what failed first, or ok. Only the first two say which model is live
# (checks/after_deploy.py may roll back on them); the others say the check could not tell.
OK = "ok"
WRONG_MODEL = "wrong_model"  # healthy, but serving another sha256 than the promoted manifest
GOLDEN_MISMATCH = "golden_mismatch"  # the promoted sha256, but its answers differ from golden
NOT_READY = "not_ready"  # it answers, but not healthy (e.g. an LFS pointer for a model)
TIMEOUT = "timeout"  # connected, but no answer in time (e.g. a cold start past the deadline)
UNREACHABLE = "unreachable"  # no connection at all (down, DNS, TLS)
SERVICE_ERROR = "service_error"  # healthy, then an error instead of answers
MALFORMED_ACCEPTED = "malformed_accepted"  # a malformed request did not get a 4xx
MANIFEST_ERROR = "manifest_error"  # the release manifest cannot drive a check: nothing checked
OUTCOMES = (
    OK,
    WRONG_MODEL,
    GOLDEN_MISMATCH,
    NOT_READY,
    TIMEOUT,
    UNREACHABLE,
    SERVICE_ERROR,
    MALFORMED_ACCEPTED,
    MANIFEST_ERROR,
)


def markdown_cell(text: str) -> str:
    """Text safe inside a markdown table cell: `|` (as in `max |dp|`) and newlines escaped."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|")
    for special in "`*_[]<>":
        escaped = escaped.replace(special, "\\" + special)
    return " ".join(escaped.splitlines())


@dataclass
class SmokeReport:
    """Each check by name, whether it held and what was seen."""

    url: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    # What failed first; ok while nothing did.
    outcome: str = OK
    release: dict = field(default_factory=dict)
    live_sha256: str | None = None

    def record(self, name: str, passed: bool, detail: str, failed_outcome: str) -> bool:
        self.checks.append((name, passed, detail))
        print(f"{'PASS' if passed else 'FAIL'} {name}: {detail}", flush=True)
        if not passed and self.outcome == OK:
            self.outcome = failed_outcome
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def markdown(self) -> str:
        lines = [
            f"### Smoke check of {self.url}: {'passed' if self.passed else 'FAILED'}",
            "",
            "| check | result | detail |",
            "|---|---|---|",
        ]
        lines += [
            f"| {markdown_cell(name)} | {'pass' if ok else 'FAIL'} | {markdown_cell(detail)} |"
            for name, ok, detail in self.checks
        ]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        return {
            "url": self.url,
            "outcome": self.outcome,
            "passed": self.passed,
            "release": self.release,
            "live_sha256": self.live_sha256,
            "checks": [
                {"name": name, "passed": passed, "detail": detail}
                for name, passed, detail in self.checks
            ],
            "markdown": self.markdown(),
        }


def write_report(report: SmokeReport, report_path: Path) -> None:
    """The report as JSON at `report_path`, whole or not at all (written aside, then renamed)."""
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=report_path.parent, prefix=f".{report_path.name}.", delete=False
    ) as partial:
        json.dump(report.as_json(), partial, indent=2)
    os.replace(partial.name, report_path)
