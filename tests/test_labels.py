"""The user's label file (pipeline/inputs/labels.py): labels in any of the accepted forms come
back in the model's output order; a file that cannot say them is refused naming the fix."""

import json

import joblib
import pytest
from sklearn.preprocessing import LabelEncoder
from user_files import SHAPE

from pipeline.inputs.files import InputFileError
from pipeline.inputs.labels import load_labels


def test_label_count_must_match_the_model_outputs(tmp_path):
    encoder_path = tmp_path / "encoder.joblib"
    joblib.dump(LabelEncoder().fit(["a", "b", "c", "d"]), encoder_path)
    with pytest.raises(InputFileError, match="lists 4 labels but the model outputs 3 classes"):
        load_labels(encoder_path, SHAPE)


def test_labels_come_in_the_encoders_order(tmp_path):
    encoder_path = tmp_path / "encoder.joblib"
    joblib.dump(LabelEncoder().fit(["c", "a", "b", "a"]), encoder_path)
    assert load_labels(encoder_path, SHAPE) == ["a", "b", "c"]


def test_a_text_file_keeps_its_own_order(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("10\nB\n2\n\n")
    assert load_labels(path, SHAPE) == ["10", "B", "2"]


@pytest.mark.parametrize(
    "content",
    [["10", "B", "2"], {"10": 0, "B": 1, "2": 2}, {"0": "10", "1": "B", "2": "2"}],
    ids=["list", "class_indices", "index_to_label"],
)
def test_json_labels_keep_the_output_order(tmp_path, content):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(content))
    assert load_labels(path, SHAPE) == ["10", "B", "2"]


def test_a_pickled_plain_list_is_accepted(tmp_path):
    joblib.dump(["z", "y", "x"], tmp_path / "labels.joblib")
    assert load_labels(tmp_path / "labels.joblib", SHAPE) == ["z", "y", "x"]


def test_duplicate_labels_are_refused(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\na\n")
    with pytest.raises(
        InputFileError, match=r"lists \['a'\] more than once; give each output its own label"
    ):
        load_labels(path, SHAPE)


@pytest.mark.parametrize(
    ("name", "content"),
    [("labels.txt", "caf\u00e9\nna\u00efve\nb\n".encode("latin-1")), ("labels", None)],
    ids=["latin-1 text", "pickle without suffix"],
)
def test_a_label_file_that_is_not_utf8_text_is_refused_naming_the_fix(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        joblib.dump(LabelEncoder().fit(["a", "b", "c"]), path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputFileError) as refused:
        load_labels(path, SHAPE)
    reason = str(refused.value)
    assert reason.startswith(f"labels {path} is read as text")
    assert "is not UTF-8" in reason
    assert reason.endswith(
        "save it as UTF-8, one label per line, or give the fitted LabelEncoder as a .joblib file"
    )


def test_a_pickle_without_classes_names_the_accepted_forms(tmp_path):
    joblib.dump({"a": 1}, tmp_path / "labels.joblib")
    with pytest.raises(InputFileError, match=r"no classes_.*\.txt.*\.json"):
        load_labels(tmp_path / "labels.joblib", SHAPE)


def test_corrupt_pickle_is_reported_with_the_fix(tmp_path):
    broken = tmp_path / "encoder.joblib"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(InputFileError, match=r"cannot be unpickled.*joblib.dump"):
        load_labels(broken, SHAPE)
