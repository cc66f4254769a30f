"""The release report: the markdown a reviewer reads, the page as headless Chromium draws it."""

import re

import numpy as np
import yaml
from clones import git
from report_helpers import candidate_sha256, markdown, run_report, verdicts, write_reports
from scipy import ndimage

from pipeline.paths import REPO_ROOT
from pipeline.report.html import CHART_FRAME, TABLE_RULE
from pipeline.report.screenshot import read_rgb, screenshot


def test_a_passing_candidate_against_main_shows_each_figure_and_its_direction(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), peak_mb=75.2))
    text = markdown(report_workspace, "--base", "main")
    assert text.startswith("## ✅ Release report: PASSED\n")
    assert f"Candidate {candidate_sha256(report_workspace)[:12]}, against main (" in text
    assert "**Judged figures: 2 toward limit, 1 away from limit, 3 unchanged.**" in text
    assert "| stage | figure | limit | main | candidate | change | vs limit |" in text
    assert "| gate | peak_memory_mb | ≤ 450 | 58 | 75.2 | +17.2 (+29.7%) | toward limit |" in text
    assert (
        "| gate | latency_p95_ms | ≤ 250 | 8.5 | 7.72 | -0.78 (-9.2%) | away from limit |" in text
    )
    # Significant digits survive: a mean difference of 4.4e-08 is not 0.0.
    assert "| parity | mean_abs_diff | ≤ 1e-05 | 4.1e-08 | 4.4e-08 | +3e-09 (+7.3%) |" in text
    assert "| parity | top1_agreement | ≥ 0.99 | 1 | 1 | 0 | unchanged |" in text
    assert "| convert | tflite_mb |  | 1.03 | 1.03 | 0 |  |" in text
    assert "For 5 requests/s: free, 1 worker(s) x 1 instance(s) (main: free," in text
    assert "| standard | 2048 MB | 1 | $25 | ❌ no | 4 x 1 | costs more than needed |" in text
    assert "Why it failed" not in text


def test_a_failing_candidate_says_why_and_marks_the_figure_past_its_limit(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), peak_mb=530.0))
    text = markdown(report_workspace, "--base", "main")
    assert text.startswith("## ❌ Release report: FAILED\n")
    assert "| gate | ❌ FAILED |" in text
    assert "### Why it failed" in text
    assert "**Judged figures: 1 past limit, " in text
    assert "- **gate**: the kernel OOM-killed 2 process(es) at a peak of 530 MB" in text
    assert "- **gate**: peak_memory_mb 530 (needs <= 450)" in text
    assert "| gate | peak_memory_mb | ≤ 450 | 58 | ❌ 530 | +472 (+813.8%) | past limit |" in text


def test_without_a_base_the_candidate_is_shown_alone(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace)))
    text = markdown(report_workspace)
    assert "no base given: the candidate's figures alone" in text
    assert "| stage | figure | limit | candidate |" in text
    assert "| parity | mean_abs_diff | ≤ 1e-05 | 4.4e-08 |" in text
    assert "| gate | ✅ PASSED |" in text
    assert "change" not in text


def test_a_failing_candidate_without_a_base(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), cold_s=7.5))
    text = markdown(report_workspace)
    assert text.startswith("## ❌ Release report: FAILED\n")
    assert "- **gate**: cold_start_seconds 7.5 (needs <= 5)" in text
    assert "| gate | cold_start_seconds | ≤ 5 | ❌ 7.5 |" in text


def test_a_stage_the_base_never_ran_reads_new(report_workspace):
    git(report_workspace.root, "rm", "-q", "reports/gate.json")
    git(report_workspace.root, "commit", "-qm", "main without a gate")
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace)))
    text = markdown(report_workspace, "--base", "main")
    assert "| gate | peak_memory_mb | ≤ 450 | new | 60.4 |  |  |" in text
    assert re.search(r"^\| gate \| .* \| new \|$", text, re.M), text  # the verdicts' table


def test_an_unknown_base_is_refused_with_the_fix(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace)))
    completed = run_report(report_workspace, "--base", "origin/no-such-branch")
    assert completed.returncode == 2
    assert "'origin/no-such-branch' is not a commit in this repository" in completed.stderr
    assert "git fetch origin main" in completed.stderr
    assert not (report_workspace.reports_dir / "release.md").exists()


def test_the_page_is_self_contained_and_says_which_chart_data_is_missing(report_workspace):
    reports = verdicts(candidate_sha256(report_workspace))
    del reports["gate"]["series"], reports["gate"]["plan_fit"]  # today's gate verdict
    write_reports(report_workspace, reports)
    markdown(report_workspace, "--base", "main")
    page = (report_workspace.reports_dir / "release.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    # The two parity charts, and cold start: the gate's measures alone draw it.
    assert page.count('src="data:image/png;base64,') == 3
    assert "the gate&#x27;s verdict has no memory time series" in page
    assert "the gate&#x27;s verdict has no latency histogram" in page


def boxes_of_colour(image: np.ndarray, colour: str, min_width: int, min_height: int):
    """Bounding boxes (top, bottom, left, right) of connected areas drawn in `colour`."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    labelled, _ = ndimage.label(np.all(image == rgb, axis=2))
    boxes = []
    for found in ndimage.find_objects(labelled):
        top, bottom = found[0].start, found[0].stop
        left, right = found[1].start, found[1].stop
        if right - left >= min_width and bottom - top >= min_height:
            boxes.append((top, bottom, left, right))
    return boxes


def test_the_page_renders_its_table_and_six_charts_in_chromium(report_workspace, tmp_path):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), peak_mb=75.2))
    markdown(report_workspace, "--base", "main")
    png = tmp_path / "page.png"
    screenshot(report_workspace.reports_dir / "release.html", png)
    image = read_rgb(png)
    # The figures table: one grid of cell rules, wide and tall, with dark text inside.
    tables = boxes_of_colour(image, TABLE_RULE, min_width=600, min_height=300)
    assert tables, "no rendered figures table in the screenshot"
    top, bottom, left, right = tables[0]
    text = np.all(image[top:bottom, left:right] < 100, axis=2).mean()
    assert text > 0.01, f"the table has almost no text ({text:.2%} dark pixels)"
    # Six charts, each framed, each with its data drawn: axes, grid and text are grey, the
    # data (bars, points, lines) coloured; an empty chart has next to no coloured pixel.
    charts = boxes_of_colour(image, CHART_FRAME, min_width=500, min_height=300)
    assert len(charts) == 6, charts
    for top, bottom, left, right in charts:
        inside = image[top + 3 : bottom - 3, left + 3 : right - 3]
        coloured = (inside.max(axis=2) - inside.min(axis=2) > 60).mean()
        assert coloured > 0.004, f"chart at {(top, left)} looks blank ({coloured:.2%} coloured)"


def test_the_pipeline_workflow_puts_the_report_in_the_step_summary_and_uploads_the_page():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/pipeline.yml").read_text())
    steps = workflow["jobs"]["gates"]["steps"]
    report_step = next(step for step in steps if "pipeline.report" in step.get("run", ""))
    assert report_step["if"] == "always()"
    assert 'base="origin/$BASE_REF"' in report_step["run"]
    assert 'cat reports/release.md >> "$GITHUB_STEP_SUMMARY"' in report_step["run"]
    uploads = [step["with"]["path"] for step in steps if "upload-artifact" in step.get("uses", "")]
    assert any("reports/release.html" in path or "reports/" in path for path in uploads)
