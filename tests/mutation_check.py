"""Mutation check: each guard, replaced in turn by one that always passes, must fail a test.

    python tests/mutation_check.py [--only NAME ...] [--list]

Works on a copy of the repository (git's tracked and unignored files) in a temporary folder,
so the checkout is never touched. One pytest session runs the tests named below: each test
runs as it is (it must pass), then once per mutation that names it, with that guard's source
rewritten on disk so that it can no longer refuse. Every guard runs in a process the test
starts (a stage, promote, the smoke check), so it reads the rewritten file; the session's
fixtures (the demo model, its conversion, parity and gate runs) are built once. A mutation
none of whose tests fails survived: the suite would not notice that guard broken. Exit status
0 only when every mutation was caught. docs/guards.md lists the same guards and tests.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One guard made to always pass: `original` in `path` becomes `mutated`."""

    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


SMOKE = "tests/test_smoke.py::"
PARITY_DRIFT = (
    "tests/test_parity.py::test_a_candidate_that_drifts_fails_every_measure_naming_each",
)
GATE_OOM = (
    "tests/test_gate.py::test_a_worst_case_that_exceeds_the_group_is_oom_killed_and_fails_on_oom_kills",
)
REFUSALS = "tests/test_promote_refusals.py::"

MUTATIONS = (
    Mutation(
        "smoke: golden answers",
        "checks/smoke.py",
        'if mismatched or worst > golden["tolerance"]:',
        "if False:",
        (
            SMOKE
            + "test_a_service_serving_a_different_model_of_the_same_shape_fails_the_golden_set",
        ),
    ),
    Mutation(
        "smoke: malformed request gets 4xx",
        "checks/smoke.py",
        "return 400 <= response.status_code < 500, ",
        "return True, ",
        (SMOKE + "test_a_service_that_answers_a_malformed_request_with_200_fails",),
    ),
    Mutation(
        "parity: max_abs_diff",
        "pipeline/stages/parity.py",
        "at_most(float(differences.max()), thresholds.max_abs_diff)",
        "at_most(0.0, thresholds.max_abs_diff)",
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: mean_abs_diff",
        "pipeline/stages/parity.py",
        "at_most(float(differences.mean()), thresholds.mean_abs_diff)",
        "at_most(0.0, thresholds.mean_abs_diff)",
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: top1_agreement",
        "pipeline/stages/parity.py",
        "float((keras_labels == tflite_labels).mean()), thresholds.min_top1_agreement",
        "1.0, thresholds.min_top1_agreement",
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: min_class_agreement",
        "pipeline/stages/parity.py",
        'min(row["agreement"] for row in rows if row["samples"]),',
        "1.0,",
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: accuracy_drop",
        "pipeline/stages/parity.py",
        "round(keras_accuracy - tflite_accuracy, 6), thresholds.max_accuracy_drop",
        "0.0, thresholds.max_accuracy_drop",
        PARITY_DRIFT,
    ),
    Mutation(
        "gate: oom_kills",
        "pipeline/gate/verdict.py",
        '"oom_kills": at_most(memory.oom_kills, 0),',
        '"oom_kills": at_most(0, 0),',
        GATE_OOM,
    ),
    Mutation(
        "promote: manifest names the model file",
        "pipeline/release/bundle.py",
        'if manifest["sha256"] != sha256_of(model_path):',
        "if False:",
        (REFUSALS + "test_a_manifest_that_names_another_model_file_is_refused",),
    ),
    Mutation(
        "promote: each verdict judged this candidate",
        "pipeline/summary.py",
        "if judged and judged != candidate_sha256:",
        "if False:",
        (
            REFUSALS + "test_a_model_file_other_than_the_one_judged_is_refused_by_every_verdict",
            REFUSALS + "test_a_verdict_for_another_candidate_is_refused",
        ),
    ),
    Mutation(
        "promote: a verdict names a candidate",
        "pipeline/summary.py",
        "if not judged or candidate_sha256 is None:",
        "if False:",
        (REFUSALS + "test_a_verdict_that_names_no_candidate_is_refused",),
    ),
    Mutation(
        "promote: every verdict passed",
        "pipeline/summary.py",
        'if not report.get("passed"):',
        "if False:",
        (REFUSALS + "test_a_failed_gate_is_refused",),
    ),
    Mutation(
        "promote: the gate's limits were enforced",
        "pipeline/release/bundle.py",
        'elif stage == "gate" and report.get("enforced") is not True:',
        "elif False:",
        (REFUSALS + "test_a_gate_that_was_not_enforced_by_the_kernel_is_refused",),
    ),
    Mutation(
        "promote: parity's predictions are this candidate's",
        "pipeline/release/bundle.py",
        'if str(predictions["candidate_sha256"]) != candidate_sha256:',
        "if False:",
        (REFUSALS + "test_parity_predictions_for_another_candidate_are_refused",),
    ),
    Mutation(
        "promote: inputs unchanged since each stage ran",
        "pipeline/summary.py",
        "if changed:",
        "if False:",
        ("tests/test_promote_integrity.py::test_a_params_change_since_the_gate_ran_is_refused",),
    ),
    Mutation(
        "promote: render.yaml deploys what the gate ran",
        "pipeline/release/deployment.py",
        "    if not found:\n        return\n",
        "    if True:\n        return\n",
        (
            "tests/test_promote_plan.py::"
            "test_a_candidate_gated_on_starter_is_not_shipped_while_render_yaml_deploys_free",
        ),
    ),
    Mutation(
        "promote: the remote serves the release's LFS objects",
        "pipeline/release/remote_objects.py",
        "if stored.is_file() and sha256_of(stored) == item.oid:",
        "if True:",
        (
            "tests/test_promote_lfs.py::"
            "test_a_corrupt_remote_object_is_named_by_the_service_and_smoke_and_promote_repairs_it",
            "tests/test_promote_lfs.py::"
            "test_an_object_removed_from_the_remote_is_uploaded_again_by_the_next_promote",
        ),
    ),
    Mutation(
        "service: a large JSON body is parsed a sample at a time",
        "service/body.py",
        "if large and only_numbers and sample_shape is not None:",
        "if False:",
        (
            "tests/test_hostile_traffic.py::"
            "test_full_json_batches_are_shed_while_one_is_parsed_and_health_still_answers",
        ),
    ),
)


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
