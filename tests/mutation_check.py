"""Mutation check: each guard, replaced in turn by one that always passes, must fail a test.

    python tests/mutation_check.py [--only NAME ...] [--skip-baseline] [--list]

Works on a copy of the repository (git's tracked and unignored files) in a temporary folder,
so the checkout is never touched. First the tests named below must pass on the copy as it is
(the baseline); then, for each mutation, one guard's source is rewritten so that it can no
longer refuse, and its tests run against it. A mutation whose tests still pass survived: the
suite would not notice that guard broken. Exit status 0 only when every mutation was caught.
docs/guards.md lists the same guards with the tests that catch each.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
        "pipeline/parity.py",
        'at_most(float(differences.max()), thresholds["max_abs_diff"])',
        'at_most(0.0, thresholds["max_abs_diff"])',
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: mean_abs_diff",
        "pipeline/parity.py",
        'at_most(float(differences.mean()), thresholds["mean_abs_diff"])',
        'at_most(0.0, thresholds["mean_abs_diff"])',
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: top1_agreement",
        "pipeline/parity.py",
        'float((keras_labels == tflite_labels).mean()), thresholds["min_top1_agreement"]',
        '1.0, thresholds["min_top1_agreement"]',
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: min_class_agreement",
        "pipeline/parity.py",
        'min(row["agreement"] for row in rows if row["samples"]),',
        "1.0,",
        PARITY_DRIFT,
    ),
    Mutation(
        "parity: accuracy_drop",
        "pipeline/parity.py",
        'round(keras_accuracy - tflite_accuracy, 6), thresholds["max_accuracy_drop"]',
        '0.0, thresholds["max_accuracy_drop"]',
        PARITY_DRIFT,
    ),
    Mutation(
        "gate: oom_kills",
        "pipeline/gate_verdict.py",
        '"oom_kills": at_most(run.oom_kills, 0),',
        '"oom_kills": at_most(0, 0),',
        GATE_OOM,
    ),
    Mutation(
        "promote: manifest names the model file",
        "pipeline/release_bundle.py",
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
        "pipeline/release_bundle.py",
        'elif stage == "gate" and report.get("enforced") is not True:',
        "elif False:",
        (REFUSALS + "test_a_gate_that_was_not_enforced_by_the_kernel_is_refused",),
    ),
    Mutation(
        "promote: parity's predictions are this candidate's",
        "pipeline/release_bundle.py",
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


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """pytest on `tests` inside the copy: (exit status, seconds, last lines of its output)."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        # The copy's code, never a stale compiled copy of a mutated module.
        env={**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-3:])
    return completed.returncode, time.monotonic() - started, tail


def apply(copy: Path, mutation: Mutation) -> str:
    """Rewrite the guard in the copy; the original text, to put back."""
    path = copy / mutation.path
    text = path.read_text()
    count = text.count(mutation.original)
    if count != 1:
        raise SystemExit(
            f"{mutation.name}: {mutation.path} holds the guard's text {count} times, not once; "
            "update tests/mutation_check.py to the code as it is"
        )
    path.write_text(text.replace(mutation.original, mutation.mutated))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="mutations whose name contains one of these")
    parser.add_argument("--skip-baseline", action="store_true", help="do not run unmutated first")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.path}\n  " + "\n  ".join(mutation.tests))
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as scratch:
        copy = copy_of_repository(Path(scratch) / "repo")
        if not args.skip_baseline:
            tests = tuple(dict.fromkeys(test for m in chosen for test in m.tests))
            status, seconds, tail = run_tests(copy, tests)
            print(f"baseline: {len(tests)} tests, exit {status} in {seconds:.0f} s", flush=True)
            if status != 0:
                print(f"the tests fail without any mutation; fix them first:\n{tail}")
                return 2
        survived = []
        for mutation in chosen:
            original = apply(copy, mutation)
            try:
                status, seconds, tail = run_tests(copy, mutation.tests)
            finally:
                (copy / mutation.path).write_text(original)
            # pytest exits 1 when tests fail; anything else (0, or a usage or collection error)
            # does not show that a test caught the mutation.
            verdict = "caught" if status == 1 else "SURVIVED" if status == 0 else f"error {status}"
            print(f"{verdict:>9}  {mutation.name} ({seconds:.0f} s)", flush=True)
            if status != 1:
                survived.append(mutation.name)
                print("    " + tail.replace("\n", "\n    "))
    print(
        f"mutation check: {len(chosen) - len(survived)} of {len(chosen)} mutations caught"
        + (f"; not caught: {', '.join(survived)}" if survived else "")
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
