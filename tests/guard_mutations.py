"""The guards tests/mutation_check.py breaks, one at a time, and the tests that must then fail.

Each guard's source text is replaced by one that always passes; docs/guards.md lists the same
guards and tests.
"""

from dataclasses import dataclass


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
