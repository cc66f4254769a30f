"""The code's layout in the docs, from the packages' and modules' own docstrings.

Each Python package under the code's folders is listed with the first sentence of its
`__init__.py` docstring, and each module with the first sentence of its own: the README shows
the packages, docs/layout.md every module. A module added, moved or described anew changes
the generated text, so `make docs --check` fails until the docs say it.
"""

import ast
import inspect
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import Workspace

# The folders that hold the project's Python code, in the order a reader meets them.
CODE_FOLDERS = ("pipeline", "service", "checks", "benchmarks")
# A sentence ends at a full stop before a space or the end: not in "e.g.", "i.e." or "...",
# nor inside `code`.
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\.)\.(?=\s|$)")
CODE_SPAN = re.compile(r"`[^`]*`")
NAME_COLUMN = 22
WIDTH = 96


@dataclass(frozen=True)
class Package:
    """A package folder, what its docstring says it is, and its modules (path, summary)."""

    path: str  # e.g. "pipeline/gate/"
    summary: str
    modules: tuple[tuple[str, str], ...]


def module_docstring(source_path: Path) -> str:
    """The module's docstring as `ast.get_docstring` gives it, read from the file's first
    tokens: a release regenerates the docs, and parsing every module costs it a third of a
    second."""
    skipped = {tokenize.ENCODING, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT}
    text = source_path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in skipped:
            continue
        if token.type != tokenize.STRING:
            return ""
        value = ast.literal_eval(token.string)
        return inspect.cleandoc(value) if isinstance(value, str) else ""
    return ""


def summary(source_path: Path) -> str:
    """The first sentence of a module's docstring, on one line ("" when it has none)."""
    docstring = module_docstring(source_path)
    paragraph = " ".join(docstring.split("\n\n", 1)[0].split())
    code = [span.span() for span in CODE_SPAN.finditer(paragraph)]
    for end in SENTENCE_END.finditer(paragraph):
        if not any(start < end.start() < stop for start, stop in code):
            return paragraph[: end.end()]
    return paragraph


def package_modules(folder: Path) -> list[Path]:
    """The package's own modules, and those of plain folders inside it (no __init__.py)."""
    modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    for child in folder.iterdir():
        if child.is_dir() and not (child / "__init__.py").exists():
            modules += child.rglob("*.py")
    return sorted(modules)


def packages(workspace: Workspace) -> list[Package]:
    """Every package under the code folders, parents before children."""
    found = []
    for top in CODE_FOLDERS:
        for init in sorted((workspace.root / top).rglob("__init__.py")):
            folder = init.parent
            if "__pycache__" in folder.parts:
                continue
            modules = tuple(
                (module.relative_to(folder).as_posix(), summary(module))
                for module in package_modules(folder)
                if "__pycache__" not in module.parts
            )
            path = folder.relative_to(workspace.root).as_posix() + "/"
            found.append(Package(path, summary(init), modules))
    return found


def layout_block(workspace: Workspace) -> str | None:
    """The README's layout: each package and what its docstring says it is."""
    found = packages(workspace)
    if not found:
        return None
    indent = " " * NAME_COLUMN
    lines = []
    for package in found:
        wrapped = textwrap.wrap(package.summary, WIDTH - NAME_COLUMN) or [""]
        lines.append(f"{package.path:<{NAME_COLUMN}}{wrapped[0]}".rstrip())
        lines += [indent + line for line in wrapped[1:]]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def modules_block(workspace: Workspace) -> str | None:
    """docs/layout.md: every module of every package, with its docstring's first sentence."""
    found = packages(workspace)
    if not found:
        return None
    parts = []
    for package in found:
        rows = [f"| `{name}` | {text.replace('|', '/')} |" for name, text in package.modules]
        parts.append(
            f"### `{package.path}`\n\n{package.summary}\n\n| module | what it does |\n|---|---|\n"
            + "\n".join(rows)
            + "\n"
        )
    return "\n".join(parts)
