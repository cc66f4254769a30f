"""Single figures in the docs, each read from the report a stage or benchmark wrote.

A figure is written `<!-- figure: gate.measures.cold_start_seconds.value -->2.93<!-- /figure -->`:
the first name is the source (`reports/<name>.json`, or `params` for params.yaml), the rest a
path into it. `[key]` reads a dict key holding spaces or dots, `[field=value]` picks the list
item whose `field` is `value`, and ` as spec` formats the value (`mb`, `sha12`, `yesno` or a
Python format spec such as `.3g` or `,`). `make docs` writes the value between the markers.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.params.unique_keys import load_unique
from pipeline.paths import Workspace
from pipeline.verdicts import read_json
from service.errors import Refusal

FIGURE = re.compile(r"<!-- figure: (?P<spec>[^>]+?) -->(?P<text>[^<\n]*)<!-- /figure -->")
SEGMENT = re.compile(r"\[(?P<bracket>[^\]]+)\]|\.?(?P<name>[^.\[\]]+)")


class FigureError(Refusal):
    """A figure marker that names no value in its source."""


@dataclass(frozen=True)
class Figure:
    spec: str  # as written in the marker, e.g. `gate.figures.latency_p50_ms as .3g`
    text: str  # what the document shows between the markers now

    @property
    def path(self) -> str:
        return self.spec.split(" as ", 1)[0].strip()

    @property
    def source(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def fmt(self) -> str:
        return self.spec.split(" as ", 1)[1].strip() if " as " in self.spec else ""


def source_path(workspace: Workspace, source: str) -> Path:
    """The file a figure's source names: params.yaml, or reports/<source>.json."""
    if source == "params":
        return workspace.params_path
    return workspace.reports_dir / f"{source}.json"


def load_source(workspace: Workspace, source: str) -> Any | None:
    """The parsed source, or None when the file is absent (a benchmark not run here)."""
    path = source_path(workspace, source)
    if not path.is_file():
        return None
    if source == "params":
        return load_unique(path.read_text(encoding="utf-8"))
    return read_json(path)


def lookup(data: Any, path: str, label: str = "") -> Any:
    """The value at a dotted path below the source (the source's own name already removed)."""
    label = label or path
    value, position = data, 0
    while position < len(path):
        match = SEGMENT.match(path, position)
        if not match or match.end() == position:
            raise FigureError(f"{label}: cannot read the path at {path[position:]!r}")
        position = match.end()
        key = match.group("bracket") or match.group("name")
        value = step(value, key.strip(), label)
    return value


def step(value: Any, key: str, path: str) -> Any:
    if isinstance(value, list):
        if "=" in key:
            field, wanted = (part.strip() for part in key.split("=", 1))
            found = [item for item in value if str(item.get(field)) == wanted]
            if not found:
                raise FigureError(f"{path}: no item with {field} = {wanted!r}")
            return found[0]
        if key.isdigit() and int(key) < len(value):
            return value[int(key)]
    elif isinstance(value, dict) and key in value:
        return value[key]
    raise FigureError(f"{path}: no {key!r} there")


def formatted(value: Any, fmt: str) -> str:
    """The value as the docs print it."""
    if fmt == "mb":
        return f"{value / 1e6:.2f}"
    if fmt == "sha12":
        return str(value)[:12]
    if fmt == "yesno":
        return "yes" if value else "no"
    if fmt:
        return format(value, fmt)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def figures_in(text: str) -> list[Figure]:
    return [Figure(match["spec"], match["text"]) for match in FIGURE.finditer(text)]


def figure_value(workspace: Workspace, figure: Figure, cache: dict[str, Any]) -> str | None:
    """The figure as its source says it now; None when the source file is absent."""
    if figure.source not in cache:
        cache[figure.source] = load_source(workspace, figure.source)
    data = cache[figure.source]
    if data is None:
        return None
    rest = figure.path[len(figure.source) :]
    return formatted(lookup(data, rest, figure.path), figure.fmt)


def fill_figures(workspace: Workspace, text: str) -> tuple[str, list[str]]:
    """The text with every figure rewritten from its source, and the sources found absent."""
    cache: dict[str, Any] = {}
    absent: set[str] = set()

    def replace(match: re.Match) -> str:
        figure = Figure(match["spec"], match["text"])
        value = figure_value(workspace, figure, cache)
        if value is None:
            absent.add(figure.source)
            return match.group(0)
        return f"<!-- figure: {figure.spec} -->{value}<!-- /figure -->"

    return FIGURE.sub(replace, text), sorted(absent)
