"""Every file a stage runs is a dependency of that stage in dvc.yaml: its module, everything that
module imports (transitively, within pipeline/ and service/), and every module it starts with
`python -m`. A change to any of them makes the stage's verdict stale, so nothing that judges a
candidate can change without the judgement running again."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from module_graph import imported_modules, module_file

from pipeline.paths import REPO_ROOT

DVC_FILES = ("dvc.yaml", "demo/dvc.yaml")
MODULE_COMMAND = re.compile(r"python -m ([\w.]+)")


def only_a_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def files_run_by(module: str) -> set[str]:
    """Repository-relative paths of every own file `python -m module` runs, with the packages
    whose __init__.py holds code (a docstring alone runs nothing worth a dependency)."""
    pending, seen = [module], set()
    files = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        parts = name.split(".")
        pending += [".".join(parts[:index]) for index in range(1, len(parts))]
        if not (path.name == "__init__.py" and only_a_docstring(path)):
            files.add(path.relative_to(REPO_ROOT).as_posix())
        pending += imported_modules(path, name)
    return files


def stages() -> list[tuple[str, str, list[str]]]:
    """(stage, module it runs, its deps) for every stage of every dvc.yaml."""
    found = []
    for dvc_file in DVC_FILES:
        for name, stage in yaml.safe_load((REPO_ROOT / dvc_file).read_text())["stages"].items():
            match = MODULE_COMMAND.search(stage["cmd"])
            assert match, f"{dvc_file} {name}: its cmd runs no `python -m` module"
            found.append((name, match.group(1), [str(dep) for dep in stage.get("deps", [])]))
    return found


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage, module, deps", stages(), ids=[s[0] for s in stages()])
def test_every_file_a_stage_runs_is_one_of_its_deps(stage, module, deps):
    missing = sorted(path for path in files_run_by(module) if not covered(path, deps))
    assert not missing, f"{stage} runs these files but does not depend on them: {missing}"


@pytest.mark.parametrize("stage, module, deps", stages(), ids=[s[0] for s in stages()])
def test_no_stage_lists_a_dependency_twice(stage, module, deps):
    repeated = sorted({dep for dep in deps if deps.count(dep) > 1})
    assert not repeated, f"{stage} lists these deps more than once: {repeated}"


def test_the_import_walk_follows_imports_and_started_modules():
    # convert starts its worker with `python -m` and imports the shared verdict code.
    files = files_run_by("pipeline.stages.convert")
    assert {"pipeline/conversion/worker.py", "pipeline/verdicts.py"} <= files
    assert "pipeline/fingerprint.py" in files  # through pipeline.verdicts
    assert not any(path.startswith(("tests/", "benchmarks/")) for path in files)
