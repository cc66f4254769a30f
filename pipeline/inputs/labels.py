"""The labels a user brings, in the order of the model's outputs: a .txt file (one per line),
a .json list (or Keras's class_indices), or a fitted LabelEncoder (joblib/pickle)."""

import json
from pathlib import Path

import numpy as np

from pipeline.inputs.files import InputFileError, ModelShape, load_pickle, require_file

# Label files read as text, one label per line; .json is a list; anything else a pickle.
TEXT_SUFFIXES = (".txt", ".csv", ".labels", "")


def _labels_from_json(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"labels {path} is not valid JSON ({error})") from None
    if isinstance(data, dict):
        # Keras's class_indices ({"cat": 0, ...}) or an index map ({"0": "cat", ...}).
        if all(isinstance(v, int) for v in data.values()):
            pairs = {index: label for label, index in data.items()}
        elif all(str(k).isdigit() for k in data):
            pairs = {int(index): label for index, label in data.items()}
        else:
            pairs = {}
        if sorted(pairs) != list(range(len(data))):
            raise InputFileError(
                f"labels {path} is a JSON object that maps neither label -> index nor "
                "index -> label over 0..n-1; give a JSON list in output order"
            )
        return [pairs[index] for index in range(len(data))]
    if not isinstance(data, list):
        raise InputFileError(f"labels {path} holds a JSON {type(data).__name__}; give a list")
    return data


def _text_lines(path: Path) -> list[str]:
    """The file's lines, or an error naming the file and the fix when it is not UTF-8 text."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"labels {path} is read as text (suffix {path.suffix or 'none'}) but is not UTF-8 "
            f"({error.reason} at byte {error.start}); save it as UTF-8, one label per line, "
            "or give the fitted LabelEncoder as a .joblib file"
        ) from None


def _labels_from_file(path: Path) -> list:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _labels_from_json(path)
    if suffix in TEXT_SUFFIXES:
        lines = _text_lines(path)
        while lines and not lines[-1].strip():
            lines.pop()
        return [line.strip() for line in lines]
    labels = load_pickle(path, "labels")
    classes = getattr(labels, "classes_", labels)
    if isinstance(classes, np.ndarray | list | tuple):
        return list(classes)
    raise InputFileError(
        f"labels {path} is a {type(labels).__name__} with no classes_; save the fitted "
        "sklearn LabelEncoder, or write the labels in output order to a .txt (one per line) "
        "or .json (a list) file"
    )


def load_labels(path: Path, shape: ModelShape) -> list[str]:
    """The labels in the order of the model's outputs: a .txt (one per line), a .json list,
    or a fitted LabelEncoder (joblib/pickle), whose classes_ order is the sorted one."""
    path = require_file(path, "labels")
    labels = [str(label) for label in _labels_from_file(path)]
    if "" in labels:
        raise InputFileError(
            f"labels {path} has an empty label (line or entry {labels.index('') + 1}); "
            "give one non-empty label per output"
        )
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise InputFileError(
            f"labels {path} lists {duplicates} more than once; give each output its own label, "
            "once, in the order of the model's outputs"
        )
    if len(labels) != shape.classes and shape.classes == 1:
        shown = ", ".join(map(repr, labels[:5])) + (", ..." if len(labels) > 5 else "")
        raise InputFileError(
            f"labels {path} lists {len(labels)} labels ({shown}) but the model has one output "
            "(one sigmoid unit, as a binary classifier has), and one output takes one label: "
            "the positive class, whose score it answers (what y = 1 meant in training); give "
            "only that label (the held-out y then holds 1 for that class and 0 for the rest)"
        )
    if len(labels) != shape.classes:
        raise InputFileError(
            f"labels {path} lists {len(labels)} labels but the model outputs "
            f"{shape.classes} classes; give the labels the model was trained with"
        )
    return labels
