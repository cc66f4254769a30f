"""`make docs`: each measured figure in the README and docs/, from the file that measured it.

Stages write their verdicts under reports/; `make bench`, `make bench-servers` and
`make quantization` write their tables there too (ignored by git), so they never dirty a tracked
file. This one explicit step puts the figures where readers see them: generated blocks between
`<!-- name:start -->` and `<!-- name:end -->` (pipeline/report/doc_blocks.py) and single figures
in `<!-- figure: ... -->` markers (pipeline/report/doc_figures.py). With `--check` it changes
nothing and exits 1 when any figure in the docs differs from its source.

    python -m pipeline.report.docs [--check]
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.report.doc_blocks import BLOCKS, source_hint
from pipeline.report.doc_figures import FigureError, figure_value, figures_in, fill_figures

BLOCK = re.compile(
    r"<!-- (?P<name>[a-z0-9-]+):start -->\n?(?P<body>.*?)<!-- (?P=name):end -->", re.S
)
# picture under reports/ -> where the docs show it from
PICTURES = {"benchmark.png": "docs/benchmark.png", "bench/peers.png": "docs/bench-peers.png"}


def documents(workspace: Workspace) -> list[Path]:
    """The README and every page under docs/."""
    readme = workspace.root / "README.md"
    pages = sorted((workspace.root / "docs").glob("*.md"))
    return ([readme] if readme.is_file() else []) + pages


def fill_blocks(workspace: Workspace, text: str, skipped: set[str]) -> str:
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise FigureError(f"no generated block is called {name!r}; known: {sorted(BLOCKS)}")
        content = BLOCKS[name](workspace)
        if content is None:
            skipped.add(f"the {name} block: {source_hint(name)}")
            return match.group(0)
        return f"<!-- {name}:start -->\n{content}<!-- {name}:end -->"

    return BLOCK.sub(replace, text)


def generated_text(workspace: Workspace, text: str, skipped: set[str]) -> str:
    """The document with every block and figure it holds rewritten from its source."""
    text = fill_blocks(workspace, text, skipped)
    text, absent = fill_figures(workspace, text)
    skipped.update(f"figures from reports/{source}.json (absent here)" for source in absent)
    return text


def differences(workspace: Workspace, name: str, before: str, after: str) -> list[str]:
    """Each block or figure of a document that differs from what its source gives."""
    found = []
    old_blocks = {m["name"]: m["body"] for m in BLOCK.finditer(before)}
    for match in BLOCK.finditer(after):
        if old_blocks.get(match["name"]) != match["body"]:
            found.append(f"{name}: the {match['name']} block differs from its source")
    cache: dict = {}
    for figure in figures_in(before):
        value = figure_value(workspace, figure, cache)
        if value is not None and value != figure.text:
            found.append(f"{name}: {figure.path} reads {figure.text!r}, its source says {value!r}")
    return found


def generated_docs(workspace: Workspace, check: bool = False) -> list[str]:
    """Rewrite (or, with check, compare) every document; the changes or differences found."""
    changed, skipped = [], set()
    for path in documents(workspace):
        name = path.relative_to(workspace.root).as_posix()
        before = path.read_text(encoding="utf-8")
        try:
            after = generated_text(workspace, before, skipped)
        except FigureError as error:
            raise SystemExit(f"{name}: {error}") from None
        if after == before:
            continue
        if check:
            changed += differences(workspace, name, before, after) or [f"{name} differs"]
        else:
            path.write_text(after, encoding="utf-8")
            changed.append(name)
    for source_name, destination in PICTURES.items():
        source, target = workspace.reports_dir / source_name, workspace.root / destination
        if not source.is_file() or (
            target.is_file() and target.read_bytes() == source.read_bytes()
        ):
            continue
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        changed.append(destination if not check else f"{destination} differs from {source_name}")
    for reason in sorted(skipped):
        print(f"not {'checked' if check else 'updated'}: {reason}")
    if check:
        print("\n".join(changed) + "\nrun `make docs`" if changed else "the docs match the reports")
    else:
        print("updated: " + ", ".join(changed) if changed else "the docs are up to date")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    arguments = parser.parse_args()
    changed = generated_docs(Workspace.from_env(), check=arguments.check)
    return 1 if arguments.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
