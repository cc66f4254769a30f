"""The user's model file (pipeline/inputs/keras_model.py): a missing, pointer, unknown, corrupt,
weights-only or custom-objects file gets an error naming the file and the fix; what kind of
output a model gives is read from its outputs."""

import numpy as np
import pytest
from user_files import inputs_params

from pipeline.inputs.files import InputFileError, InputPaths
from pipeline.inputs.keras_model import detect_output_kind, load_keras_model
from pipeline.paths import Workspace

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2976130\n"


def model_paths(tmp_path, model_file) -> InputPaths:
    inputs = {"folder": str(tmp_path), "model": str(model_file), "labels": "l", "heldout": "h"}
    return InputPaths.from_params(inputs_params(inputs), Workspace(tmp_path))


def test_missing_file_names_the_path_and_params(tmp_path):
    with pytest.raises(InputFileError, match=r"model .*absent\.keras does not exist.*params\.yaml"):
        load_keras_model(model_paths(tmp_path, tmp_path / "absent.keras"))


def test_lfs_pointer_in_place_of_the_model_says_git_lfs_pull(tmp_path):
    pointer = tmp_path / "model.keras"
    pointer.write_bytes(LFS_POINTER)
    with pytest.raises(InputFileError, match=r"Git LFS pointer.*git lfs pull"):
        load_keras_model(model_paths(tmp_path, pointer))


def test_unknown_model_format_names_the_accepted_suffixes(tmp_path):
    weird = tmp_path / "model.onnx"
    weird.write_bytes(b"\x00" * 10)
    with pytest.raises(InputFileError, match=r"\.keras, \.h5"):
        load_keras_model(model_paths(tmp_path, weird))


@pytest.mark.slow
def test_corrupt_model_is_not_a_readable_keras_model(tmp_path):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    with pytest.raises(InputFileError, match=r"not a readable Keras model.*Keras said: "):
        load_keras_model(model_paths(tmp_path, corrupt))


@pytest.mark.slow
def test_a_weights_only_h5_says_how_to_rebuild_the_model(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save_weights(tmp_path / "model.weights.h5")
    weights_only = tmp_path / "model.h5"
    (tmp_path / "model.weights.h5").rename(weights_only)
    with pytest.raises(InputFileError) as refused:
        load_keras_model(model_paths(tmp_path, weights_only))
    message = str(refused.value)
    assert "holds only weights" in message and "load_weights" in message
    assert "model.save('model.keras')" in message
    assert "Keras said: ValueError: No model config found" in message


@pytest.mark.slow
def test_a_custom_objects_module_that_does_not_import_names_its_error(tmp_path):
    (tmp_path / "layers.py").write_text("import no_such_package\n")
    (tmp_path / "model.keras").write_bytes(b"PK")
    inputs = {"folder": ".", "model": "model.keras", "labels": "l", "heldout": "h"}
    paths = InputPaths.from_params(
        inputs_params({**inputs, "custom_objects": "layers.py"}), Workspace(tmp_path)
    )
    with pytest.raises(InputFileError, match=r"cannot be imported \(ModuleNotFoundError"):
        load_keras_model(paths)


@pytest.mark.parametrize(
    ("outputs", "kind"),
    [
        ([[0.2, 0.8], [0.5, 0.5]], "probability"),
        ([[0.9, 0.8], [0.1, 0.3]], "score"),
        ([[2.5, -1.0], [0.1, 0.3]], "logit"),
    ],
)
def test_output_kind_is_read_from_the_outputs(outputs, kind):
    assert detect_output_kind(np.array(outputs))[0] == kind
