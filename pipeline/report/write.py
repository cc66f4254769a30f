"""Write the release report's two pages, release.md and release.html.

    python -m pipeline.report [--base REF] [--out-dir DIR] [--screenshot PNG]

release.md is GitHub-flavoured markdown for a step summary or a pull-request comment;
release.html is one self-contained page with the same tables and the charts.
"""

import argparse
import os
import sys
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.report.model import build_report
from pipeline.report.sources import ReportError, resolve_ref

MARKDOWN_NAME = "release.md"
HTML_NAME = "release.html"
CHART_CACHE_NAME = "report-charts"  # under build/: charts drawn before, by content


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
    write_text(html_path, render_html(report, workspace.build_dir / CHART_CACHE_NAME))
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
        help="also draw release.html in headless Chromium into this PNG (docs/release-report.png)",
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
