"""The code's own structure: no import cycle among the project's modules, and no Python file
over 300 lines, the tests' own included."""

from module_graph import imports_of, module_name

from pipeline.paths import REPO_ROOT

PACKAGES = ("pipeline", "service", "checks", "benchmarks")
MAX_LINES = 300


def own_modules() -> dict[str, set[str]]:
    """Every module of PACKAGES, and the modules of PACKAGES it imports (at any depth)."""
    files = [path for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py")]
    return {module_name(path): imports_of(path, module_name(path), PACKAGES) for path in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.get(module, ()):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    assert cycles(own_modules()) == []


def test_a_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_python_file_is_over_300_lines():
    long = {
        path.relative_to(REPO_ROOT).as_posix(): lines
        for folder in (*PACKAGES, "tests")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
