"""The release report: every gate's verdict and key figure, base -> candidate, for a reviewer.

    python -m pipeline.report [--base REF] [--out-dir DIR] [--screenshot PNG]

Writes release.md (GitHub-flavoured markdown for a step summary or a pull-request comment)
and release.html (one self-contained page with the same tables and the charts) under
reports/, from the candidate's reports on disk and, with --base, those committed at REF.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.paths import Workspace
from pipeline.report.figures import FigureRow, failure_reasons, figure_rows
from pipeline.report.sources import (
    STAGES,
    ReportError,
    Reports,
    base_reports,
    candidate_reports,
    git,
    resolve_ref,
)
from pipeline.summary import verdict_rows

MARKDOWN_NAME = "release.md"
HTML_NAME = "release.html"


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
    )


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so no reader sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_report(
    workspace: Workspace, out_dir: Path, base_ref: str | None = None
) -> tuple[Path, Path]:
    """Write release.md and release.html into `out_dir`; their paths."""
    # Imported here: the charts need matplotlib, which only the HTML page uses.
    from pipeline.report.html import render_html
    from pipeline.report.markdown import render_markdown

    report = build_report(workspace, base_ref)
    markdown_path, html_path = out_dir / MARKDOWN_NAME, out_dir / HTML_NAME
    write_text(markdown_path, render_markdown(report))
    write_text(html_path, render_html(report))
    return markdown_path, html_path


def write_release_report(workspace: Workspace, release_dir: Path, source_commit: str):
    """The report promotion stores in release/, against the commit it promotes onto."""
    # That commit holds the verdicts of what the branch shipped before; a workspace outside
    # git (as in some tests) has no such commit, and its report stands alone.
    try:
        resolve_ref(workspace, source_commit)
    except ReportError:
        return write_report(workspace, release_dir)
    return write_report(workspace, release_dir, base_ref=source_commit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.report",
        description="Write reports/release.md and reports/release.html: every gate's verdict "
        "and key figure for the candidate, compared with a base when given.",
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="git ref whose committed reports to compare against (e.g. main, origin/main)",
    )
    parser.add_argument(
        "--out-dir", type=Path, help="where to write the two files (default: reports/)"
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="also draw release.html in headless Chromium into this PNG (the README's picture)",
    )
    args = parser.parse_args(argv)
    workspace = Workspace.from_env()
    try:
        paths = write_report(workspace, args.out_dir or workspace.reports_dir, args.base)
        if args.screenshot:
            from pipeline.report.screenshot import crop_to_content, screenshot

            screenshot(paths[1], args.screenshot)
            crop_to_content(args.screenshot)
            paths = (*paths, args.screenshot)
    except ReportError as error:
        print(f"report failed: {error}", file=sys.stderr)
        return 2
    print("wrote " + " and ".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
