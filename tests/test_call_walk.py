"""Walking the gate's rooms (tests/call_walk.py): the walk follows calls in the order they run,
depth-first, and the gate stage returns to a room it left at most MAX_RETURNS times."""

import textwrap
from pathlib import Path

from call_walk import Source, gate_returns, returns, walk

from pipeline.paths import REPO_ROOT

MAX_RETURNS = 10


def package(root: Path, **modules: str) -> Source:
    """A Source reading `modules` (name -> code) of a package `pkg` written under `root`."""
    (root / "pkg").mkdir()
    for name, code in modules.items():
        (root / "pkg" / f"{name}.py").write_text(textwrap.dedent(code))

    def file_of(module: str) -> Path | None:
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        return path if module.startswith("pkg.") and path.is_file() else None

    return Source(file_of)


def test_the_walk_reads_each_function_once_depth_first_in_the_order_calls_run(tmp_path):
    source = package(
        tmp_path,
        stage="""
            from pkg import tools
            from pkg.tools import Meter, helper

            def run():
                meter = Meter()
                helper(own(), tools.other())
                meter.read()
                helper(1, 2)

            def own():
                return 1
        """,
        tools="""
            class Meter:
                def __init__(self):
                    self.value = 0

                def read(self):
                    return shared()

            def helper(a, b):
                return shared()

            def other():
                return 2

            def shared():
                return 3
        """,
    )
    read = walk(source, ("pkg.stage", "run"))
    assert read == [
        ("pkg.stage", "run"),
        ("pkg.tools", "Meter.__init__"),
        ("pkg.stage", "own"),  # arguments run before their call
        ("pkg.tools", "other"),
        ("pkg.tools", "helper"),
        ("pkg.tools", "shared"),
        ("pkg.tools", "Meter.read"),  # a method through its instance, read once
    ]
    assert returns([module for module, _ in read]) == 2


def test_a_return_is_a_step_into_a_room_left_before():
    assert returns(["a", "a", "b", "c"]) == 0
    assert returns(["a", "b", "a", "c", "b", "a"]) == 3


def test_walking_the_gate_returns_to_a_room_it_left_at_most_ten_times():
    count, read = gate_returns()
    rooms = {module for module, _ in read}
    # The walk reaches every part of the gate stage: a walk that lost its way would read less.
    gate_modules = {
        f"pipeline.gate.{path.stem}"
        for path in (REPO_ROOT / "pipeline" / "gate").glob("*.py")
        if path.stem != "__init__"
    }
    assert gate_modules <= rooms, f"not reached: {sorted(gate_modules - rooms)}"
    assert count <= MAX_RETURNS, f"{count} returns: run `python tests/call_walk.py` to see them"
