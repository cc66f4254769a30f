"""`make docs`: each measured figure in the README and docs/, from the file that measured it.

Stages write their verdicts under reports/; `make bench`, `make bench-servers`, `make
quantization` and the other benchmarks write their tables there too. This one explicit step
puts the figures where readers see them: generated blocks between `<!-- name:start -->` and
`<!-- name:end -->` (pipeline/report/doc_blocks.py) and single figures in `<!-- figure: ... -->`
markers (pipeline/report/doc_figures.py).

With `--check` it changes nothing and exits 1 when a figure in the docs matches neither the
reports on disk nor the committed ones (git's HEAD): a local `make demo` or benchmark rewrites
reports/ with this machine's own figures, which the docs quote only after `make docs`.

    python -m pipeline.report.docs [--check]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.report.doc_blocks import BLOCKS, source_hint
from pipeline.report.doc_figures import FigureError, figure_value, figures_in, fill_figures

BLOCK = re.compile(
    r"<!-- (?P<name>[a-z0-9-]+):start -->\n?(?P<body>.*?)<!-- (?P=name):end -->", re.S
)
# picture under reports/ -> where the docs show it from
PICTURES = {"benchmark.png": "docs/benchmark.png", "bench/peers.png": "docs/bench-peers.png"}
# What the docs quote: the reports, and params.yaml for settings the docs state.
SOURCES = ("reports", "params.yaml")


@dataclass(frozen=True)
class SourcesElsewhere(Workspace):
    """The workspace's docs and code, with reports/ and params.yaml read from another folder."""

    sources_root: Path = Path()

    @property
    def reports_dir(self) -> Path:
        return self.sources_root / "reports"

    @property
    def params_path(self) -> Path:
        return self.sources_root / "params.yaml"


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


def rewritten(workspace: Workspace, skipped: set[str]) -> list[tuple[Path, str, str, str]]:
    """(path, name, text now, text from the sources) of every document its sources change."""
    found = []
    for path in documents(workspace):
        name = path.relative_to(workspace.root).as_posix()
        before = path.read_text(encoding="utf-8")
        try:
            after = generated_text(workspace, before, skipped)
        except FigureError as error:
            raise SystemExit(f"{name}: {error}") from None
        if after != before:
            found.append((path, name, before, after))
    return found


def stale_pictures(workspace: Workspace) -> list[tuple[Path, Path]]:
    """(source, copy) of every chart whose copy under docs/ differs from its source."""
    found = []
    for source_name, destination in PICTURES.items():
        source, target = workspace.reports_dir / source_name, workspace.root / destination
        if source.is_file() and not (
            target.is_file() and target.read_bytes() == source.read_bytes()
        ):
            found.append((source, target))
    return found


def write_docs(workspace: Workspace) -> list[str]:
    """Rewrite every document and chart copy from its source; the files changed."""
    skipped: set[str] = set()
    changed = []
    for path, name, _, after in rewritten(workspace, skipped):
        path.write_text(after, encoding="utf-8")
        changed.append(name)
    for source, target in stale_pictures(workspace):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        changed.append(target.relative_to(workspace.root).as_posix())
    for reason in sorted(skipped):
        print(f"not updated: {reason}")
    print("updated: " + ", ".join(changed) if changed else "the docs are up to date")
    return changed


def docs_differences(workspace: Workspace, skipped: set[str]) -> list[str]:
    """What in the docs differs from the sources the workspace reads."""
    found = []
    for _, name, before, after in rewritten(workspace, skipped):
        found += differences(workspace, name, before, after) or [f"{name} differs"]
    for source, target in stale_pictures(workspace):
        copy = target.relative_to(workspace.root).as_posix()
        found.append(f"{copy} differs from reports/{source.relative_to(workspace.reports_dir)}")
    return found


def committed_sources(root: Path, into: Path) -> bool:
    """Write HEAD's reports/ and params.yaml under `into`; False where `root` is no git
    checkout's top folder or HEAD holds neither."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True
    )
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        return False
    held = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", "HEAD", *SOURCES],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    held = [name for name in held if name]
    for name in held:
        content = subprocess.run(
            ["git", "show", f"HEAD:{name}"], cwd=root, capture_output=True, check=True
        ).stdout
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(content)
    return bool(held)


def differing_reports(disk: Path, committed: Path) -> list[str]:
    """reports/ files on disk that are not byte for byte the committed ones."""
    names = {p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file()}
    return sorted(
        f"reports/{name}"
        for name in names
        if not (disk / name).is_file()
        or (disk / name).read_bytes() != (committed / name).read_bytes()
    )


def check_docs(workspace: Workspace) -> list[str]:
    """The docs' differences from the reports on disk, or none when they match the committed
    reports instead (this machine's own run on disk, not yet quoted)."""
    skipped: set[str] = set()
    found = docs_differences(workspace, skipped)
    if found:
        with tempfile.TemporaryDirectory(prefix="committed-reports-") as folder:
            if committed_sources(workspace.root, Path(folder)):
                committed = SourcesElsewhere(workspace.root, Path(folder))
                committed_skipped: set[str] = set()
                if not docs_differences(committed, committed_skipped):
                    own = differing_reports(workspace.reports_dir, committed.reports_dir)
                    for reason in sorted(committed_skipped):
                        print(f"not checked: {reason}")
                    print(
                        "the docs match the committed reports; this machine's own run "
                        f"({', '.join(own) or 'params.yaml'}) differs from them, and the docs "
                        "quote it after `make docs`"
                    )
                    return []
    for reason in sorted(skipped):
        print(f"not checked: {reason}")
    if found:
        print("\n".join(found) + "\nrun `make docs`")
    else:
        print("the docs match the reports")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    arguments = parser.parse_args()
    workspace = Workspace.from_env()
    if arguments.check:
        return 1 if check_docs(workspace) else 0
    write_docs(workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
