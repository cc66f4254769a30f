"""The parity stage's charts: agreement per class, and confidence Keras vs candidate."""

from pipeline.report.drawing import (
    BASE,
    CANDIDATE,
    LIMIT,
    Chart,
    encode,
    floats,
    legend_below,
    new_figure,
)
from pipeline.report.figures import dig, fmt, is_number
from pipeline.report.model import ReleaseReport


def per_class_chart(report: ReleaseReport) -> Chart:
    title = "Top-1 agreement with Keras, per true class"
    rows = report.candidate.per_class
    if not rows:
        return Chart(title, None, "parity wrote no reports/parity_per_class.csv")
    label, value = list(rows[0])[:2]
    labels = [row[label] for row in rows]
    figure, axes = new_figure()
    axes.barh(labels, floats(rows, value), color=CANDIDATE, label="candidate")
    base_rows = {row[label]: row for row in (report.base.per_class or [])} if report.base else {}
    if base_rows and value in next(iter(base_rows.values())):
        shown = [
            (i, float(base_rows[name][value]))
            for i, name in enumerate(labels)
            if name in base_rows and base_rows[name][value] != ""
        ]
        axes.plot(
            [v for _, v in shown], [i for i, _ in shown], "D", color=BASE, label=report.base.name
        )
    threshold = dig(
        report.candidate.verdict("parity"), ("measures", "min_class_agreement", "threshold")
    )
    if is_number(threshold):
        axes.axvline(threshold, color=LIMIT, linestyle="--", label=f"limit {fmt(threshold)}")
    axes.set_xlim(0, 1.02)
    axes.set_xlabel(value)
    axes.invert_yaxis()
    legend_below(figure)
    return Chart(title, encode(figure))


def confidence_chart(report: ReleaseReport) -> Chart:
    title = "Confidence of the top Keras class: Keras vs candidate"
    rows = report.candidate.confidence
    if not rows:
        return Chart(title, None, "parity wrote no reports/parity_confidence.csv")
    x_name, y_name = [name for name in rows[0] if name != "sample"][:2]
    figure, axes = new_figure()
    axes.plot([0, 1], [0, 1], color=BASE, linewidth=1, label="equal")
    axes.scatter(
        floats(rows, x_name),
        floats(rows, y_name),
        s=12,
        color=CANDIDATE,
        alpha=0.7,
        label=f"{len(rows)} held-out samples",
    )
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    legend_below(figure)
    return Chart(title, encode(figure))
