"""release.md as a reviewer meets it in the pull-request comment: the verdict and what changed
first, unchanged figures folded away, the gate's charts drawn inline by GitHub (Mermaid)."""

import re

from report_helpers import candidate_sha256, markdown, verdicts, write_reports


def test_the_comment_leads_with_the_verdict_and_what_changed(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), peak_mb=75.2))
    text = markdown(report_workspace, "--base", "main")
    headings = re.findall(r"^#{2,3} (.+)$", text, re.M)
    assert headings[:3] == ["✅ Release report: PASSED", "What changed", "Verdicts"], headings
    changed = text[text.index("### What changed") : text.index("<details>")]
    assert (
        "| gate | peak_memory_mb | ≤ 450 | 58 | 75.2 | +17.2 (+29.7%) | toward limit |" in changed
    )
    assert "unchanged |" not in changed
    folded = text[text.index("<details>") : text.index("</details>")]
    assert re.search(r"<summary>\d+ figures unchanged</summary>", folded)
    assert "| parity | top1_agreement | ≥ 0.99 | 1 | 1 | 0 | unchanged |" in folded


def test_a_failed_figure_is_never_folded_away(report_workspace):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), peak_mb=530.0))
    text = markdown(report_workspace, "--base", "main")
    assert (
        text.index("### Why it failed") < text.index("### What changed") < text.index("<details>")
    )
    folded = text[text.index("<details>") : text.index("</details>")]
    assert "peak_memory_mb" not in folded


def test_the_gate_charts_are_mermaid_with_base_beside_candidate_and_the_limit_as_a_line(
    report_workspace,
):
    write_reports(report_workspace, verdicts(candidate_sha256(report_workspace), cold_s=2.0))
    text = markdown(report_workspace, "--base", "main")
    charts = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    cold_start = next(chart for chart in charts if "Cold start" in chart)
    assert 'x-axis ["main", "candidate"]' in cold_start
    assert "bar [0.162, 2]" in cold_start
    assert "line [5, 5]" in cold_start and "limit 5 s" in cold_start
    # p95 of 8.5 and 7.72 ms against 250 ms: a line there would flatten the bars, so the
    # limit is named in the title instead.
    p95 = next(chart for chart in charts if "p95" in chart)
    assert "line [" not in p95 and "(limit 250 ms, above the bars)" in p95
