"""Mutation check: each guard, replaced in turn by one that always passes, must fail a test.

    python tests/mutation_check.py [--only NAME ...] [--list]

Works on a copy of the repository (git's tracked and unignored files) in a temporary folder, so
the checkout is never touched. One pytest session runs the tests that tests/guard_mutations.py
names: each test runs as it is (it must pass), then once per mutation that names it, with that
guard's source rewritten on disk so that it can no longer refuse. Every guard runs in a process
the test starts (a stage, promote, the smoke check), so it reads the rewritten file; the
session's fixtures (the demo model, its conversion, parity and gate runs) are built once. A
mutation none of whose tests fails survived: the suite would not notice that guard broken. Exit
status 0 only when every mutation was caught. docs/guards.md lists the same guards and tests.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from guard_mutations import MUTATIONS, Mutation

REPO_ROOT = Path(__file__).resolve().parents[1]


def copy_of_repository(destination: Path) -> Path:
    """The repository's tracked and unignored files, copied under `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def names(item_id: str, test: str) -> bool:
    """Whether pytest's node id `item_id` is `test` or one of its parameters."""
    return item_id == test or item_id.startswith(test + "[")


# The pytest plugin (`-p mutation_check`): loaded into the session the script starts.
CHOSEN_ENV = "MUTATION_CHECK_ONLY"
outcomes: dict[str, list[str]] = {}  # mutation name -> outcome of each of its test runs
baseline_failures: list[str] = []


def chosen_mutations() -> list[Mutation]:
    words = [word for word in os.environ.get(CHOSEN_ENV, "").split(",") if word]
    return [m for m in MUTATIONS if not words or any(word in m.name for word in words)]


def run_mutated(item, mutation: Mutation) -> str:
    """Run `item` once with `mutation` applied on disk: failed, passed or error."""
    from _pytest.runner import runtestprotocol

    path = Path(item.config.rootpath) / mutation.path
    original = path.read_text()
    if original.count(mutation.original) != 1:
        return f"error: {mutation.path} does not hold the guard's text exactly once"
    path.write_text(original.replace(mutation.original, mutation.mutated))
    try:
        item._initrequest()  # fresh function-scoped fixtures
        # Tear down the test's own fixtures after it, keeping its module's and the session's.
        reports = runtestprotocol(item, nextitem=item.parent, log=False)
    finally:
        path.write_text(original)
    if any(report.failed and report.when == "call" for report in reports):
        return "failed"
    if any(report.failed for report in reports):
        return "error: " + next(r.longreprtext for r in reports if r.failed)[-300:]
    return "passed"


def pytest_runtest_protocol(item, nextitem):
    """Each mutation that names this test first, then the test as it is (logged as usual)."""
    for mutation in chosen_mutations():
        if any(names(item.nodeid, test) for test in mutation.tests):
            outcome = run_mutated(item, mutation)
            outcomes.setdefault(mutation.name, []).append(outcome)
            print(f"\n{mutation.name} / {item.nodeid}: {outcome}", flush=True)
            item._initrequest()
    return None  # pytest's own protocol runs the test unmutated


def pytest_runtest_logreport(report):
    if report.failed:
        baseline_failures.append(report.nodeid)


def verdicts() -> list[tuple[str, Mutation, list[str]]]:
    """(caught | UNSURE | SURVIVED, mutation, outcome of each of its runs) per mutation."""
    rows = []
    for mutation in chosen_mutations():
        results = outcomes.get(mutation.name, ["not run: no test of it was collected"])
        # A failure counts only where the same test passes unmutated.
        unsure = any(names(f, test) for f in baseline_failures for test in mutation.tests)
        caught = "failed" in results and not unsure
        rows.append(("caught" if caught else "UNSURE" if unsure else "SURVIVED", mutation, results))
    return rows


def pytest_sessionfinish(session, exitstatus):
    if any(verdict != "caught" for verdict, _, _ in verdicts()) and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    rows = verdicts()
    for verdict, mutation, results in rows:
        terminalreporter.write_line(f"{verdict:>8}  {mutation.name}: {', '.join(results)}")
    if baseline_failures:
        terminalreporter.write_line(
            f"unmutated, these failed (fix them first): {', '.join(baseline_failures)}"
        )
    missed = [mutation.name for verdict, mutation, _ in rows if verdict != "caught"]
    terminalreporter.write_line(
        f"mutation check: {len(rows) - len(missed)} of {len(rows)} mutations caught"
        + (f"; not caught: {', '.join(missed)}" if missed else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    args = parser.parse_args(argv)
    os.environ[CHOSEN_ENV] = ",".join(args.only or [])
    chosen = chosen_mutations()
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.path}\n  " + "\n  ".join(mutation.tests))
        return 0
    tests = list(dict.fromkeys(test for mutation in chosen for test in mutation.tests))
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as scratch:
        copy = copy_of_repository(Path(scratch) / "repo")
        # The copy's code, never a compiled copy of a mutated module.
        env = {
            **os.environ,
            "PYTHONPATH": f"{copy}{os.pathsep}{copy / 'tests'}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        command = [sys.executable, "-m", "pytest", "-p", "mutation_check", "-p"]
        command += ["no:cacheprovider", "-q", "--tb=short", *tests]
        return subprocess.run(command, cwd=copy, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
