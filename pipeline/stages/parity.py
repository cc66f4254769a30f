"""Stage `parity`: the candidate must answer like the Keras model on every held-out sample.

Keras runs with the user's own encoder and normaliser objects; the candidate runs through
`service.predictor`, the very code and lite runtime the service uses. The verdict names the
candidate's sha256 so it can never bless another file.
"""

import os
import sys
from typing import Any

import numpy as np

# TensorFlow logs its start-up chatter at INFO; keep stage output to what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.inputs.files import InputPaths, load_heldout, negative_name
from pipeline.inputs.keras_model import keras_outputs, load_keras_model
from pipeline.inputs.label_order import judge_label_order, refusal
from pipeline.inputs.labels import load_labels
from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.verdicts import at_least, at_most, write_verdict
from service.bundle import BundleError, sha256_of
from service.errors import Refusal
from service.predictor import Predictor


def per_class_rows(truth: np.ndarray, keras_labels: np.ndarray, tflite_labels: np.ndarray, labels):
    """For each true class: its held-out sample count, how often the candidate's top-1 agrees
    with Keras's, and both accuracies; None (no figure) for a class with no samples."""
    rows = []
    for label in labels:
        members = truth == label
        count = int(members.sum())
        shares = {
            "agreement": keras_labels == tflite_labels,
            "keras_accuracy": keras_labels == label,
            "tflite_accuracy": tflite_labels == label,
        }
        rows.append(
            {
                "label": label,
                "samples": count,
                **{
                    name: float(hits[members].mean()) if count else None
                    for name, hits in shares.items()
                },
            }
        )
    return rows


def class_names(labels: list[str]) -> list[str]:
    """The classes the held-out answers are judged in: the labels, or for one output (one
    label) its class and the rest."""
    return labels if len(labels) > 1 else [labels[0], negative_name(labels[0])]


def answers_named(outputs: np.ndarray, labels: list[str], output_kind: str) -> np.ndarray:
    """Each row's answer as a class name: the top output's label; for one output, its label
    where the score passes the middle (0.5, or 0 for a logit) and the rest where not."""
    if len(labels) > 1:
        return np.array(labels)[outputs.argmax(axis=1)]
    middle = 0.0 if output_kind == "logit" else 0.5
    return np.where(outputs[:, 0] >= middle, labels[0], negative_name(labels[0]))


def judge(
    keras_probs, tflite_probs, keras_labels, tflite_labels, truth, rows, settings, thresholds
):
    """Each parity measure with its value, threshold and outcome; the convincing renamings
    (`settings`: params.yaml's parity section; `thresholds`: its row for the quantization)."""
    differences = np.abs(keras_probs - tflite_probs)
    keras_accuracy = float((keras_labels == truth).mean())
    tflite_accuracy = float((tflite_labels == truth).mean())
    measures = {
        "max_abs_diff": at_most(float(differences.max()), thresholds.max_abs_diff),
        "mean_abs_diff": at_most(float(differences.mean()), thresholds.mean_abs_diff),
        "top1_agreement": at_least(
            float((keras_labels == tflite_labels).mean()), thresholds.min_top1_agreement
        ),
        "min_class_agreement": at_least(
            min(row["agreement"] for row in rows if row["samples"]),
            thresholds.min_class_agreement,
        ),
        "accuracy_drop": at_most(
            round(keras_accuracy - tflite_accuracy, 6), thresholds.max_accuracy_drop
        ),
    }
    # Keras and the candidate agree even on a label list in the wrong order; the confusion
    # between the held-out labels and the candidate's answers shows it.
    labels = [row["label"] for row in rows]
    measures["label_order"], convincing = judge_label_order(
        truth, tflite_labels, labels, settings.label_order
    )
    if settings.min_accuracy is not None:
        measures["accuracy"] = at_least(tflite_accuracy, float(settings.min_accuracy))
    return measures, {"keras": keras_accuracy, "tflite": tflite_accuracy}, convincing


def failure_lines(measures, accuracy, convincing, labels, labels_path) -> list[str]:
    """Each failed measure in words with its fix; the label order first (`labels` as the
    user's list gives them)."""
    lines = []
    if convincing:
        one_output = len(labels) == 1
        lines.append(refusal(convincing, class_names(labels), labels_path, one_output))
    drifted, floor = [], []
    for name, m in measures.items():
        # The batched model's label order and accuracy fail with the single one's: said once.
        kind = name.removeprefix("batched_")
        if m["passed"] or kind == "label_order" or (kind == "accuracy" and floor):
            continue
        if kind == "accuracy":
            floor.append(
                f"accuracy {m['value']:.3g} on the held-out labels (Keras scores "
                f"{accuracy['keras']:.3g}) is under parity.min_accuracy {m['threshold']}, "
                "your floor in params.yaml; set it to null for none"
            )
        else:
            drifted.append(f"{name} {m['value']:.3g} (needs {m['rule']} {m['threshold']})")
    if drifted:
        lines.append(
            f"{', '.join(drifted)}: the candidate does not answer like Keras; try another "
            "convert.quantization (or loosen parity.thresholds), then run dvc repro"
        )
    return lines + floor


def served_answers_agree(predictor: Predictor, samples: np.ndarray) -> None:
    """What the service answers (predict(): label, value named by kind, top-k) must be the
    model's outputs, named as the manifest says; BundleError if not."""
    key, labels = predictor.contract.value_key, predictor.contract.labels
    answers = predictor.predict(samples[:8], top_k=len(labels))
    outputs = predictor.predict_proba(samples[:8])
    for answer, row in zip(answers, outputs, strict=True):
        values = [entry[key] for entry in answer["top_k"]]
        expected = [float(row[labels.index(entry["label"])]) for entry in answer["top_k"]]
        if values != sorted(values, reverse=True) or not np.allclose(values, expected):
            raise BundleError(f"the served answers do not match the candidate's {key} values")


def parity(workspace: Workspace) -> None:
    """Compare Keras and the candidate on the held-out set; write the verdict and plots."""
    try:
        params = load_params(workspace)
        quantization = params.convert.quantization
        thresholds = params.parity.thresholds[quantization]
        paths = InputPaths.from_params(params.inputs, workspace)
        predictor = Predictor(workspace.candidate_dir)
        if predictor.manifest["source_model"]["sha256"] != sha256_of(paths.model):
            raise BundleError(
                f"the candidate was converted from another model than {paths.model}; "
                "run the convert stage again"
            )
        model, shape = load_keras_model(paths)
        labels = load_labels(paths.labels, shape)
        if list(predictor.contract.labels) != labels:
            raise BundleError("the candidate's labels differ from inputs.labels; convert again")
        samples, truth = load_heldout(paths.heldout, shape, labels)
    except Refusal as failure:
        # A verdict on disk must never outlive the run that failed to produce a new one.
        write_verdict(workspace, "parity", {"passed": False, "reason": str(failure)})
        raise SystemExit(f"parity failed: {failure}") from None

    keras_probs = keras_outputs(paths, model, samples)
    # Every held-out sample through each model the service runs: batch 1 and batch N.
    tflite_probs = predictor.predict_proba(samples, route="single").astype(np.float64)
    batched_probs = None
    if predictor.batch_size > 1:
        batched_probs = predictor.predict_proba(samples, route="batched").astype(np.float64)
    try:
        served_answers_agree(predictor, samples)
    except BundleError as failure:
        write_verdict(workspace, "parity", {"passed": False, "reason": str(failure)})
        raise SystemExit(f"parity failed: {failure}") from None
    kind = predictor.contract.output_kind
    names = class_names(labels)
    keras_labels = answers_named(keras_probs, labels, kind)
    tflite_labels = answers_named(tflite_probs, labels, kind)
    rows = per_class_rows(truth, keras_labels, tflite_labels, names)
    measures, accuracy, convincing = judge(
        keras_probs,
        tflite_probs,
        keras_labels,
        tflite_labels,
        truth,
        rows,
        params.parity,
        thresholds,
    )
    if batched_probs is not None:
        batched_labels = answers_named(batched_probs, labels, kind)
        batched_rows = per_class_rows(truth, keras_labels, batched_labels, names)
        batched_measures, batched_accuracy, _ = judge(
            keras_probs,
            batched_probs,
            keras_labels,
            batched_labels,
            truth,
            batched_rows,
            params.parity,
            thresholds,
        )
        accuracy["tflite_batched"] = batched_accuracy["tflite"]
        measures |= {f"batched_{name}": entry for name, entry in batched_measures.items()}
    passed = all(entry["passed"] for entry in measures.values())
    report: dict[str, Any] = {
        "passed": passed,
        "candidate_sha256": predictor.sha256,
        "source_model_sha256": predictor.manifest["source_model"]["sha256"],
        "quantization": quantization,
        "output_kind": predictor.contract.output_kind,
        "served_as": predictor.contract.value_key,
        "samples": len(samples),
        "batch_sizes": [1, predictor.batch_size] if batched_probs is not None else [1],
        "batched_sha256": (predictor.manifest.get("batched") or {}).get("sha256"),
        "runtime": f"{predictor.runtime.name} {predictor.runtime.version}",
        "measures": measures,
        "accuracy": accuracy,
        "per_class": rows,
    }
    failed = failure_lines(measures, accuracy, convincing, labels, paths.labels)
    if failed:  # each with its fix, for promote to repeat
        report["failures"] = failed
    write_verdict(workspace, "parity", report)
    write_plots(workspace, rows, keras_probs, tflite_probs)
    predictions_path = workspace.parity_predictions_path
    predictions_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        predictions_path,
        probabilities=tflite_probs.astype(np.float32),
        labels=np.array(labels)[tflite_probs.argmax(axis=1)],  # what the service answers
        candidate_sha256=np.array(predictor.sha256),
        output_kind=np.array(predictor.contract.output_kind),
    )
    if failed:
        raise SystemExit(f"parity failed for {quantization}: " + "; ".join(failed))
    batched_note = (
        f", batch {predictor.batch_size} max |dp| {measures['batched_max_abs_diff']['value']:.2e}"
        if batched_probs is not None
        else ""
    )
    print(
        f"parity passed for {quantization}: max |dp| {measures['max_abs_diff']['value']:.2e}"
        f"{batched_note}, "
        f"top-1 agreement {measures['top1_agreement']['value']:.3f} on {len(samples)} samples; "
        f"accuracy {accuracy['tflite']:.3f} (Keras {accuracy['keras']:.3f})"
    )


def write_plots(workspace: Workspace, rows, keras_probs, tflite_probs) -> None:
    """DVC plot data: agreement per class, and Keras vs candidate confidence per sample."""
    # A class with no held-out samples has no figures: empty cells, not a 0 that reads as
    # "always wrong". The label and agreement lead: the plot and the release chart read those.
    columns = ("agreement", "keras_accuracy", "tflite_accuracy")
    lines = [f"label,{','.join(columns)},samples"]
    lines += [
        ",".join(
            [
                row["label"],
                *("" if row[c] is None else f"{row[c]:.4f}" for c in columns),
                str(row["samples"]),
            ]
        )
        for row in rows
    ]
    (workspace.reports_dir / "parity_per_class.csv").write_text("\n".join(lines) + "\n")
    top = keras_probs.argmax(axis=1)
    confidence = ["sample,keras_confidence,tflite_confidence"]
    confidence += [
        f"{index},{keras_probs[index, cls]:.6f},{tflite_probs[index, cls]:.6f}"
        for index, cls in enumerate(top)
    ]
    (workspace.reports_dir / "parity_confidence.csv").write_text("\n".join(confidence) + "\n")


if __name__ == "__main__":
    sys.exit(parity(Workspace.from_env()))
