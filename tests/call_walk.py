"""Walking the gate's rooms: how often a reader following the gate's calls goes back a room.

How often a reader who follows the gate stage's calls must go back to a module already read.
A room is one of the gate's own modules (pipeline/stages/gate.py and pipeline/gate/*). The walk
starts at `pipeline.stages.gate.gate()` and reads each function the first time a call reaches
it, depth-first, in the order the calls run (a call's arguments before the call). It follows
every call whose target the source names within pipeline/ and service/: a function or class
defined or imported by name, a module's attribute, a method through its class, `self`, or a
name annotated with one of our classes or assigned from a call that returns one (a class's
constructor is its `__init__` or `__post_init__`, where it has one). The rest of pipeline/ and
service/ is walked through, not counted: its modules are corridors between rooms. The walk is
the sequence of rooms of the functions read; a return is a step into a room it had left.

`python tests/call_walk.py` prints the walk and its returns.
"""

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from module_graph import absolute, module_file, package_of

FUNCTION = ast.FunctionDef | ast.AsyncFunctionDef
START = ("pipeline.stages.gate", "gate")


def is_gate_room(module: str) -> bool:
    return module == "pipeline.stages.gate" or module.startswith("pipeline.gate.")


@dataclass
class Module:
    """One module's top-level definitions and the names it imports."""

    name: str
    definitions: dict[str, ast.AST] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @classmethod
    def read(cls, name: str, path: Path) -> "Module":
        tree, module = ast.parse(path.read_text()), cls(name)
        for node in tree.body:
            if isinstance(node, FUNCTION | ast.ClassDef):
                module.definitions[node.name] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = absolute(node, package_of(path, name))
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = (base, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    module.imports[bound] = ((alias.asname and alias.name) or bound, None)
        return module


@dataclass(frozen=True)
class Target:
    """What a name stands for: a module, a class or a function (with its class, if a method)."""

    module: str
    node: ast.AST | None = None  # None: the module itself
    owner: ast.ClassDef | None = None

    @property
    def qualname(self) -> str:
        name = getattr(self.node, "name", "")
        return f"{self.owner.name}.{name}" if self.owner else name


class Source:
    """Our modules, read on demand, and what their names resolve to."""

    def __init__(self, file_of=module_file) -> None:
        self.file_of, self.modules = file_of, {}

    def module(self, name: str) -> Module | None:
        if name not in self.modules:
            path = self.file_of(name)
            self.modules[name] = Module.read(name, path) if path else None
        return self.modules[name]

    def attribute(self, module_name: str, attr: str, depth: int = 0) -> Target | None:
        module = self.module(module_name)
        if module is not None and attr in module.definitions:
            return Target(module_name, module.definitions[attr])
        if module is not None and attr in module.imports and depth < 8:
            return self.imported(*module.imports[attr], depth + 1)
        return Target(f"{module_name}.{attr}") if self.module(f"{module_name}.{attr}") else None

    def imported(self, base: str, attr: str | None, depth: int = 0) -> Target | None:
        if attr is None:
            return Target(base) if self.module(base) else None
        return self.attribute(base, attr, depth)

    def name(self, module: Module, name: str) -> Target | None:
        if name in module.definitions:
            return Target(module.name, module.definitions[name])
        return self.imported(*module.imports[name]) if name in module.imports else None


def member(target: Target, attr: str) -> ast.AST | None:
    """A method, or the annotation of a field, that class `target` defines as `attr`."""
    for node in target.node.body:
        if isinstance(node, FUNCTION) and node.name == attr:
            return node
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == attr:
            return node.annotation
    return None


@dataclass
class Scope:
    """One function being read: its module, its class, and the classes its names hold."""

    source: Source
    module: Module
    owner: Target | None
    names: dict[str, Target] = field(default_factory=dict)

    def class_of(self, annotation: ast.AST | None) -> Target | None:
        """The class of ours an annotation names (`X`, `X | None`, `"X"`, `Iterator[X]`)."""
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body
        if isinstance(annotation, ast.BinOp):
            return self.class_of(annotation.left) or self.class_of(annotation.right)
        if isinstance(annotation, ast.Subscript):
            return self.class_of(annotation.slice)
        found = self.resolve(annotation) if annotation is not None else None
        return found if found and isinstance(found.node, ast.ClassDef) else None

    def instance(self, expression: ast.AST) -> Target | None:
        """The class of ours whose instance `expression` is, where the source says."""
        if isinstance(expression, ast.Name):
            if expression.id == "self":
                return self.owner
            return self.names.get(expression.id)
        if isinstance(expression, ast.Attribute):
            holder = self.instance(expression.value)
            found = member(holder, expression.attr) if holder else None
            if found is not None and not isinstance(found, FUNCTION):
                return Scope(self.source, self.source.module(holder.module), None).class_of(found)
        if isinstance(expression, ast.Call):
            called = self.resolve(expression.func)
            if called and isinstance(called.node, ast.ClassDef):
                return called
            if called and isinstance(called.node, FUNCTION):
                scope = Scope(self.source, self.source.module(called.module), called.owner)
                return scope.class_of(called.node.returns)
        return None

    def resolve(self, expression: ast.AST) -> Target | None:
        """What a name or attribute chain stands for."""
        if isinstance(expression, ast.Name) and expression.id not in self.names:
            return self.source.name(self.module, expression.id)
        if isinstance(expression, ast.Attribute):
            holder = self.resolve(expression.value) if not self.instance(expression.value) else None
            if holder and holder.node is None:
                return self.source.attribute(holder.module, expression.attr)
            holder = holder if holder and isinstance(holder.node, ast.ClassDef) else None
            holder = holder or self.instance(expression.value)
            found = member(holder, expression.attr) if holder else None
            if isinstance(found, FUNCTION):
                return Target(holder.module, found, holder.node)
        return None

    def callee(self, call: ast.Call) -> Target | None:
        """The function a call runs: a class's constructor where it has one."""
        target = self.resolve(call.func)
        if target and isinstance(target.node, ast.ClassDef):
            for name in ("__init__", "__post_init__"):
                found = member(target, name)
                if isinstance(found, FUNCTION):
                    return Target(target.module, found, target.node)
            return None
        return target if target and isinstance(target.node, FUNCTION) else None


def calls_in_order(function: ast.AST) -> list[ast.Call]:
    """The calls of a function's body in the order they run: arguments before their call."""
    found: list[ast.Call] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            visit(child)
        if isinstance(node, ast.Call):
            found.append(node)

    for statement in function.body:
        visit(statement)
    return found


def assigned(name: ast.AST | None, value: ast.AST | None) -> list[tuple[str, ast.AST]]:
    """(name, value) of each plain name an assignment binds: `a = x` and `a, b = x, y`."""
    if isinstance(name, ast.Name) and value is not None:
        return [(name.id, value)]
    pairs = isinstance(name, ast.Tuple) and isinstance(value, ast.Tuple)
    if pairs and len(name.elts) == len(value.elts):
        return [pair for n, v in zip(name.elts, value.elts, strict=True) for pair in assigned(n, v)]
    return []


def scope_of(source: Source, target: Target) -> Scope:
    module = source.module(target.module)
    owner = Target(target.module, target.owner) if target.owner else None
    scope = Scope(source, module, owner)
    arguments = target.node.args
    for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
        if (found := scope.class_of(argument.annotation)) is not None:
            scope.names[argument.arg] = found
    for node in ast.walk(target.node):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.withitem):
            value = node.context_expr if isinstance(node, ast.withitem) else node.value
            names = [node.optional_vars] if isinstance(node, ast.withitem) else []
            names += [*getattr(node, "targets", []), getattr(node, "target", None)]
            for name in names:
                for bound, held in assigned(name, value):
                    if (found := scope.instance(held)) is not None:
                        scope.names[bound] = found
    return scope


def walk(source: Source | None = None, start: tuple[str, str] = START) -> list[tuple[str, str]]:
    """(module, function) of every function the walk reads, in the order it reads them."""
    source = source or Source()
    read: list[tuple[str, str]] = []

    def visit(target: Target) -> None:
        if (target.module, target.qualname) in read:
            return
        read.append((target.module, target.qualname))
        scope = scope_of(source, target)
        for call in calls_in_order(target.node):
            if (callee := scope.callee(call)) is not None:
                visit(callee)

    module_name, function = start
    visit(Target(module_name, source.module(module_name).definitions[function]))
    return read


def returns(rooms: list[str]) -> int:
    """How many steps of a walk through `rooms` go into a room it had been in and left."""
    count, left, current = 0, set(), None
    for room in rooms:
        if room == current:
            continue
        if current is not None:
            left.add(current)
        count += room in left
        current = room
    return count


def gate_returns() -> tuple[int, list[tuple[str, str]]]:
    """The gate's walk through its rooms, and how many times it returns to a room it left."""
    read = [(module, function) for module, function in walk() if is_gate_room(module)]
    return returns([module for module, _ in read]), read


if __name__ == "__main__":
    count, read = gate_returns()
    previous = None
    for module, function in read:
        print(f"{'' if module == previous else module:30} {function}")
        previous = module
    print(f"returns to a room it left: {count}")
