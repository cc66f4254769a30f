"""Bring your own model: each kind of bad user file gets an error naming the file and the fix;
labels in any of the accepted forms come back in output order."""

import json

import joblib
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import (
    LabelEncoder,
    MaxAbsScaler,
    MinMaxScaler,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)

from pipeline.inputs.files import (
    InputFileError,
    InputPaths,
    ModelShape,
    load_heldout,
    load_preprocessing,
)
from pipeline.inputs.keras_model import detect_output_kind, load_keras_model
from pipeline.inputs.labels import load_labels
from pipeline.params.reading import read_section
from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace

SHAPE = ModelShape(sample_shape=(6, 4), classes=3)
FEATURES = SHAPE.sample_shape[-1]
LABELS = ["a", "b", "c"]
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2976130\n"


def raw_samples(count: int = 10, shape: ModelShape = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, size=(count, *shape.sample_shape))


def inputs_params(inputs: dict) -> InputsParams:
    """params.yaml's `inputs` section from its keys, as the stages read it."""
    return read_section(InputsParams, inputs, "inputs")


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
    with pytest.raises(InputFileError, match=r"lists \['a'\] more than once"):
        load_labels(path, SHAPE)


def test_a_pickle_without_classes_names_the_accepted_forms(tmp_path):
    joblib.dump({"a": 1}, tmp_path / "labels.joblib")
    with pytest.raises(InputFileError, match=r"no classes_.*\.txt.*\.json"):
        load_labels(tmp_path / "labels.joblib", SHAPE)


def test_corrupt_pickle_is_reported_with_the_fix(tmp_path):
    broken = tmp_path / "encoder.joblib"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(InputFileError, match=r"cannot be unpickled.*joblib.dump"):
        load_labels(broken, SHAPE)


@pytest.mark.parametrize("scaler_class", [StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler])
def test_affine_scalers_become_numbers_that_reproduce_transform(tmp_path, scaler_class):
    samples = raw_samples()
    scaler = scaler_class().fit(samples.reshape(-1, FEATURES))
    joblib.dump(scaler, tmp_path / "scaler.joblib")
    preprocessing = load_preprocessing(tmp_path / "scaler.joblib", SHAPE)
    expected = scaler.transform(samples.reshape(-1, FEATURES)).reshape(samples.shape)
    np.testing.assert_allclose(preprocessing.apply(samples), expected, rtol=1e-9, atol=1e-9)
    assert preprocessing.source == scaler_class.__name__


def test_a_scaler_fitted_on_whole_sequences_is_carried_per_position(tmp_path):
    samples = raw_samples()
    scaler = StandardScaler().fit(samples.reshape(len(samples), -1))
    joblib.dump(scaler, tmp_path / "scaler.joblib")
    preprocessing = load_preprocessing(tmp_path / "scaler.joblib", SHAPE)
    assert preprocessing.scale.shape == SHAPE.sample_shape
    expected = scaler.transform(samples.reshape(len(samples), -1)).reshape(samples.shape)
    np.testing.assert_allclose(preprocessing.apply(samples), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "normaliser",
    [QuantileTransformer(n_quantiles=20), PCA(n_components=4)],
    ids=["quantile", "pca"],
)
def test_a_normaliser_that_is_not_per_feature_affine_is_refused(tmp_path, normaliser):
    normaliser.fit(raw_samples(40).reshape(-1, FEATURES))
    joblib.dump(normaliser, tmp_path / "normaliser.joblib")
    with pytest.raises(InputFileError, match=r"not a per-feature affine.*StandardScaler"):
        load_preprocessing(tmp_path / "normaliser.joblib", SHAPE)


def test_a_normaliser_of_another_width_is_refused(tmp_path):
    joblib.dump(StandardScaler().fit(np.ones((5, 7))), tmp_path / "scaler.joblib")
    with pytest.raises(InputFileError, match=r"fitted on 7 features .* \(6, 4\): 4 features"):
        load_preprocessing(tmp_path / "scaler.joblib", SHAPE)


def test_an_image_scaler_per_channel_broadcasts_over_the_last_axis(tmp_path):
    image = ModelShape(sample_shape=(5, 5, 3), classes=2)
    samples = raw_samples(8, image)
    scaler = MinMaxScaler().fit(samples.reshape(-1, 3))
    joblib.dump(scaler, tmp_path / "scaler.joblib")
    preprocessing = load_preprocessing(tmp_path / "scaler.joblib", image)
    assert preprocessing.scale.shape == (3,)
    expected = scaler.transform(samples.reshape(-1, 3)).reshape(samples.shape)
    np.testing.assert_allclose(preprocessing.apply(samples), expected, rtol=1e-9, atol=1e-9)


def test_no_normaliser_means_none(tmp_path):
    assert load_preprocessing(None, SHAPE) is None


def write_heldout(path, samples, labels):
    np.savez(path, X=samples, y=np.asarray(labels))
    return path


def test_heldout_of_the_wrong_shape_names_the_expected_shape(tmp_path):
    path = write_heldout(tmp_path / "h.npz", np.zeros((5, 6, 3)), ["a"] * 5)
    with pytest.raises(InputFileError, match=r"X of shape \(5, 6, 3\).*\(n, 6, 4\)"):
        load_heldout(path, SHAPE, LABELS)


def test_heldout_with_unknown_labels_lists_them(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(3), ["a", "zebra", "b"])
    with pytest.raises(InputFileError, match=r"does not know: \['zebra'\]"):
        load_heldout(path, SHAPE, LABELS)


def test_integer_y_are_class_indices_into_the_labels(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(3), np.array([2, 0, 1]))
    assert load_heldout(path, SHAPE, ["z", "x", "y"])[1].tolist() == ["y", "z", "x"]


def test_integer_y_out_of_range_is_refused(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(3), np.array([0, 3, 1]))
    with pytest.raises(InputFileError, match=r"outside 0\.\.2: \[3\]"):
        load_heldout(path, SHAPE, LABELS)


def test_string_digits_in_y_are_labels_not_indices(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(2), np.array(["2", "10"]))
    assert load_heldout(path, SHAPE, ["1", "10", "2"])[1].tolist() == ["2", "10"]


def test_heldout_without_y_says_how_to_save_it(tmp_path):
    np.savez(tmp_path / "h.npz", X=raw_samples(3))
    with pytest.raises(InputFileError, match=r"lacks y.*np\.savez"):
        load_heldout(tmp_path / "h.npz", SHAPE, LABELS)


def test_heldout_with_nan_is_refused(tmp_path):
    samples = raw_samples(3)
    samples[1, 2, 3] = np.nan
    path = write_heldout(tmp_path / "h.npz", samples, ["a", "b", "c"])
    with pytest.raises(InputFileError, match="NaN, infinity"):
        load_heldout(path, SHAPE, LABELS)


def test_heldout_that_is_not_an_npz_is_refused(tmp_path):
    path = tmp_path / "h.npz"
    path.write_text("X,y\n1,a\n")
    with pytest.raises(InputFileError, match=r"not a readable .npz"):
        load_heldout(path, SHAPE, LABELS)


def test_good_heldout_loads_as_float32_and_string_labels(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(3), ["a", "b", "c"])
    samples, labels = load_heldout(path, SHAPE, LABELS)
    assert samples.dtype == np.float32 and samples.shape == (3, 6, 4)
    assert labels.tolist() == ["a", "b", "c"]


def test_a_file_outside_the_inputs_folder_is_refused(tmp_path):
    inputs = {"folder": "model", "model": "elsewhere/m.keras", "labels": "model/l.txt"}
    with pytest.raises(InputFileError, match=r"inputs\.model .* outside inputs\.folder.*DVC"):
        InputPaths.from_params(
            inputs_params({**inputs, "heldout": "model/h.npz"}), Workspace(tmp_path)
        )


def test_label_encoder_is_an_alias_of_labels(tmp_path):
    inputs = {"model": "m.keras", "label_encoder": "enc.joblib", "heldout": "h.npz"}
    assert (
        InputPaths.from_params(inputs_params(inputs), Workspace(tmp_path)).labels
        == tmp_path / "enc.joblib"
    )


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
