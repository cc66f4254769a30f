"""The project's own modules as files and the imports between them, read from the source."""

import ast
import itertools
from pathlib import Path

from pipeline.paths import REPO_ROOT

OWN_PACKAGES = ("pipeline", "service")


def module_file(module: str, packages: tuple[str, ...] = OWN_PACKAGES) -> Path | None:
    """The repository file of a module of `packages`; None for anything else."""
    if module.split(".")[0] not in packages:
        return None
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    """The dotted name of a repository file: pipeline/gate/cost.py is pipeline.gate.cost."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path, module: str) -> str:
    """The package relative imports in `path` start from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a `from ... import` names, relative dots resolved against `package`."""
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, *([base] if base else [])])
    return base


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module `path` imports (at any depth of its code) or starts with `-m`, with the
    package of each `from package import name`."""
    package = package_of(path, module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
        elif isinstance(node, ast.List | ast.Tuple):  # [sys.executable, "-m", "pipeline.x"]
            values = [elt.value if isinstance(elt, ast.Constant) else None for elt in node.elts]
            found.update(
                value for flag, value in itertools.pairwise(values) if flag == "-m" and value
            )
    return found


def imports_of(path: Path, module: str, packages: tuple[str, ...] = OWN_PACKAGES) -> set[str]:
    """The modules of `packages` that `path` imports (at any depth of its code): for `from
    package import submodule` the submodule alone, as Python runs the package's own
    __init__.py for any of its submodules anyway."""
    package = package_of(path, module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            submodules = {name for name in submodules if module_file(name, packages)}
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(base)
    return {name for name in found if name != module and module_file(name, packages)}
