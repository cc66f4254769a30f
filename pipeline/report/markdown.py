"""release.md: the release report in GitHub-flavoured markdown (step summary, PR comment)."""

from pipeline.report import tables
from pipeline.report.mermaid import gate_charts
from pipeline.report.model import ReleaseReport

MARKS = {"PASSED": "✅ PASSED", "FAILED": "❌ FAILED", "yes": "✅ yes", "no": "❌ no"}


def cell(text: str) -> str:
    """A table cell: one line, pipes escaped, verdict words marked."""
    text = " ".join(text.split()).replace("|", "\\|")
    return MARKS.get(text, text)


def table(table: tables.Table) -> list[str]:
    """The table; a failed figure's candidate value carries ❌ so it stands out."""
    marked = table.headers.index("candidate") if "candidate" in table.headers else None
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "---|" * len(table.headers)]
    for row, failed in zip(table.rows, table.failed, strict=True):
        cells = [cell(value) for value in row]
        if failed and marked is not None:
            cells[marked] = f"❌ {cells[marked]}"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def changed_and_unchanged(figures: tables.Table) -> tuple[tables.Table, tables.Table]:
    """Rows whose figure moved, is new or failed; and the rest, folded away in the page."""
    changed, unchanged = tables.Table(figures.headers), tables.Table(figures.headers)
    column = figures.headers.index("change") if "change" in figures.headers else None
    for row, failed in zip(figures.rows, figures.failed, strict=True):
        same = column is not None and row[column] == "0"
        (unchanged if same and not failed else changed).add(row, failed)
    return changed, unchanged


def render_markdown(report: ReleaseReport) -> str:
    """The verdict and what changed first; unchanged figures folded; the gate's charts inline."""
    mark = {"PASSED": "✅", "FAILED": "❌"}.get(report.overall, "⚠️")
    lines = [f"## {mark} {tables.title(report)}", "", tables.subtitle(report), ""]
    if tables.movement(report):
        lines += [f"**{tables.movement(report)}**", ""]
    if report.failures:
        lines += ["### Why it failed", ""]
        lines += [f"- **{stage}**: {' '.join(why.split())}" for stage, why in report.failures]
        lines += [""]
    changed, unchanged = changed_and_unchanged(tables.figure_table(report))
    if changed.rows:
        title = "What changed" if report.base else "Key figures"
        lines += [f"### {title}", "", *table(changed), ""]
    if unchanged.rows:
        lines += [
            "<details>",
            f"<summary>{len(unchanged.rows)} figures unchanged</summary>",
            "",
            *table(unchanged),
            "",
            "</details>",
            "",
        ]
    lines += ["### Verdicts", "", *table(tables.verdict_table(report))]
    charts = gate_charts(report)
    if charts:
        lines += ["", "### Charts", *charts]
    if report.gate:
        lines += ["", "### Plan fit", ""]
        lines += [text for text in (tables.measured_where(report.gate, report.base_gate),) if text]
        if report.deployment:
            lines += ["", report.deployment]
        lines += ["", tables.plan_summary(report)]
        plans = tables.plan_table(report)
        if plans.rows:
            lines += ["", *table(plans)]
    lines += ["", f"<sub>{tables.FOOTNOTE}</sub>"]
    return "\n".join(lines) + "\n"
