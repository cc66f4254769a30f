"""release.html: one self-contained page (inline CSS, charts as base64 PNGs; no network)."""

from html import escape
from pathlib import Path

from pipeline.report import tables
from pipeline.report.charts import HEIGHT_PX, WIDTH_PX, Chart, all_charts
from pipeline.report.model import ReleaseReport

# Charts sit in a frame of their own colour, which nothing else on the page uses: the test
# finds the charts in a screenshot by it.
CHART_FRAME = "#54aeff"
TABLE_RULE = "#d0d7de"
CSS = f"""
body {{ font: 14px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1f2328;
  margin: 0 auto; padding: 16px 24px; max-width: 1140px; background: #ffffff; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 22px 0 8px; border-bottom: 1px solid {TABLE_RULE}; }}
.banner {{ padding: 12px 16px; border-radius: 6px; margin-bottom: 12px; }}
.banner.passed {{ background: #dafbe1; }} .banner.failed {{ background: #ffebe9; }}
.banner.not-ready {{ background: #fff8c5; }}
table {{ border-collapse: collapse; margin: 4px 0; }}
th, td {{ border: 1px solid {TABLE_RULE}; padding: 4px 10px; text-align: left; }}
th {{ background: #f6f8fa; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.PASSED, .yes, .away {{ color: #1a7f37; font-weight: 600; }}
.FAILED, .no, .past {{ color: #cf222e; font-weight: 600; }}
.toward {{ color: #9a6700; }}
tr.failed td {{ background: #fff5f5; }}
ul.failures li {{ margin: 2px 0; }}
.charts {{ display: grid; grid-template-columns: repeat(2, {WIDTH_PX + 6}px); gap: 16px; }}
figure {{ margin: 0; }}
figcaption {{ font-weight: 600; margin-bottom: 4px; }}
.chart img {{ display: block; border: 3px solid {CHART_FRAME}; }}
.missing {{ width: {WIDTH_PX}px; height: {HEIGHT_PX}px; border: 3px dashed #d0d7de;
  display: flex; align-items: center; justify-content: center; color: #656d76; }}
footer {{ margin-top: 20px; color: #656d76; font-size: 12px; }}
"""
WORD_CLASSES = {
    "PASSED": "PASSED",
    "FAILED": "FAILED",
    "yes": "yes",
    "no": "no",
    "toward limit": "toward",
    "away from limit": "away",
    "past limit": "past",
}
NUMERIC_HEADERS = {"limit", "candidate", "change"}


def html_table(table: tables.Table, numeric: set[str] = frozenset()) -> str:
    header = "".join(f"<th>{escape(name)}</th>" for name in table.headers)
    body = []
    for row, failed in zip(table.rows, table.failed, strict=True):
        cells = []
        for name, value in zip(table.headers, row, strict=True):
            classes = [WORD_CLASSES.get(value, "")] + (["num"] if name in numeric else [])
            if failed and name == "candidate":
                classes.append("FAILED")
            class_attr = " ".join(c for c in classes if c)
            cells.append(
                f'<td class="{class_attr}">{escape(value)}</td>'
                if class_attr
                else f"<td>{escape(value)}</td>"
            )
        body.append(f"<tr{' class=failed' if failed else ''}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def chart_figure(chart: Chart) -> str:
    caption = f"<figcaption>{escape(chart.title)}</figcaption>"
    if chart.png_base64 is None:
        missing = f'<div class="missing">{escape(chart.note)}</div>'
        return f'<figure class="nochart">{caption}{missing}</figure>'
    return (
        f'<figure class="chart">{caption}<img alt="{escape(chart.title)}" width="{WIDTH_PX}" '
        f'height="{HEIGHT_PX}" src="data:image/png;base64,{chart.png_base64}"></figure>'
    )


def render_html(report: ReleaseReport, chart_cache: Path | None = None) -> str:
    overall = report.overall.replace(" ", "-").lower()
    base_name = report.base.name if report.base else ""
    parts = [
        f'<header class="banner {overall}"><h1>{escape(tables.title(report))}</h1>',
        f"<div>{escape(tables.subtitle(report))}</div>",
        f"<div><b>{escape(tables.movement(report))}</b></div></header>",
        "<h2>Verdicts</h2>",
        html_table(tables.verdict_table(report)),
    ]
    if report.failures:
        items = "".join(
            f"<li><b>{escape(stage)}</b>: {escape(why)}</li>" for stage, why in report.failures
        )
        parts += ["<h2>Why it failed</h2>", f'<ul class="failures">{items}</ul>']
    parts += [
        "<h2>Key figures</h2>",
        html_table(tables.figure_table(report), NUMERIC_HEADERS | {base_name}),
    ]
    if report.gate:
        parts += ["<h2>Plan fit</h2>"]
        parts += [
            f"<p>{escape(text)}</p>"
            for text in (
                tables.measured_where(report.gate, report.base_gate),
                report.deployment,
                tables.plan_summary(report),
            )
            if text
        ]
        plans = tables.plan_table(report)
        if plans.rows:
            parts.append(html_table(plans, {"memory", "CPU", "per month"}))
    charts = "".join(chart_figure(chart) for chart in all_charts(report, chart_cache))
    parts += ["<h2>Charts</h2>", f'<div class="charts">{charts}</div>']
    parts.append(f"<footer>{escape(tables.FOOTNOTE)}</footer>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(tables.title(report))}</title><style>{CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
