"""release.md: the release report in GitHub-flavoured markdown (step summary, PR comment)."""

from pipeline.report import tables
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


def render_markdown(report: ReleaseReport) -> str:
    mark = {"PASSED": "✅", "FAILED": "❌"}.get(report.overall, "⚠️")
    lines = [f"## {mark} {tables.title(report)}", "", tables.subtitle(report), ""]
    if tables.movement(report):
        lines += [f"**{tables.movement(report)}**", ""]
    lines += table(tables.verdict_table(report))
    if report.failures:
        lines += ["", "### Why it failed", ""]
        lines += [f"- **{stage}**: {' '.join(why.split())}" for stage, why in report.failures]
    lines += ["", "### Key figures", "", *table(tables.figure_table(report))]
    if report.gate:
        lines += ["", "### Plan fit", ""]
        lines += [text for text in (tables.measured_where(report.gate, report.base_gate),) if text]
        lines += ["", tables.plan_summary(report)]
        plans = tables.plan_table(report)
        if plans.rows:
            lines += ["", *table(plans)]
    lines += ["", f"<sub>{tables.FOOTNOTE}</sub>"]
    return "\n".join(lines) + "\n"
