"""How every chart of the release page is drawn: one size, one palette, legends off the data."""

import base64
import io
import math
from dataclasses import dataclass

WIDTH_PX, HEIGHT_PX, DPI = 540, 320, 100
CANDIDATE, BASE, LIMIT, THRESHOLD, GOOD = "#1f6feb", "#8c959f", "#cf222e", "#bf8700", "#1a7f37"


@dataclass(frozen=True)
class Chart:
    """A titled chart: a base64 PNG, or None and a note saying what data is missing."""

    title: str
    png_base64: str | None
    note: str = ""


def pyplot():
    """matplotlib's pyplot on a file backend, imported when a chart is first drawn (a page whose
    charts are cached never loads matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the charts are files, even on a desktop
    import matplotlib.pyplot as plt

    return plt


def new_figure():
    figure, axes = pyplot().subplots(
        figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained"
    )
    axes.grid(alpha=0.3)
    return figure, axes


def legend_below(figure) -> None:
    """The legend under the axes, never over the data."""
    figure.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)


def encode(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def floats(rows: list[dict[str, str]], column: str) -> list[float]:
    """The column as numbers; an empty cell (a class with no samples) is NaN: no bar."""
    return [float(row[column]) if row[column] != "" else math.nan for row in rows]
