"""Bring your own model: each kind of bad user file gets an error naming the file and the fix."""

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

from pipeline.model_inputs import (
    InputFileError,
    ModelShape,
    load_heldout,
    load_keras_model,
    load_labels,
    load_preprocessing,
)

SHAPE = ModelShape(timesteps=6, features=4, classes=3)
LABELS = ["a", "b", "c"]
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2976130\n"


def raw_samples(count: int = 10, shape: ModelShape = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, size=(count, shape.timesteps, shape.features))


def test_missing_file_names_the_path_and_params(tmp_path):
    with pytest.raises(InputFileError, match=r"model .*absent\.keras does not exist.*params\.yaml"):
        load_keras_model(tmp_path / "absent.keras")


def test_lfs_pointer_in_place_of_the_model_says_git_lfs_pull(tmp_path):
    pointer = tmp_path / "model.keras"
    pointer.write_bytes(LFS_POINTER)
    with pytest.raises(InputFileError, match=r"Git LFS pointer.*git lfs pull"):
        load_keras_model(pointer)


def test_unknown_model_format_names_the_accepted_suffixes(tmp_path):
    weird = tmp_path / "model.onnx"
    weird.write_bytes(b"\x00" * 10)
    with pytest.raises(InputFileError, match=r"\.keras, \.h5"):
        load_keras_model(weird)


@pytest.mark.slow
def test_corrupt_model_is_not_a_readable_keras_model(tmp_path):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    with pytest.raises(InputFileError, match=r"not a readable Keras model.*model.save"):
        load_keras_model(corrupt)


def test_label_count_must_match_the_model_outputs(tmp_path):
    encoder_path = tmp_path / "encoder.joblib"
    joblib.dump(LabelEncoder().fit(["a", "b", "c", "d"]), encoder_path)
    with pytest.raises(InputFileError, match="knows 4 labels but the model outputs 3 classes"):
        load_labels(encoder_path, SHAPE)


def test_labels_come_in_the_encoders_order(tmp_path):
    encoder_path = tmp_path / "encoder.joblib"
    joblib.dump(LabelEncoder().fit(["c", "a", "b", "a"]), encoder_path)
    assert load_labels(encoder_path, SHAPE) == ["a", "b", "c"]


def test_corrupt_pickle_is_reported_with_the_fix(tmp_path):
    broken = tmp_path / "encoder.joblib"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(InputFileError, match=r"cannot be unpickled.*joblib.dump"):
        load_labels(broken, SHAPE)


@pytest.mark.parametrize("scaler_class", [StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler])
def test_affine_scalers_become_numbers_that_reproduce_transform(tmp_path, scaler_class):
    samples = raw_samples()
    scaler = scaler_class().fit(samples.reshape(-1, SHAPE.features))
    joblib.dump(scaler, tmp_path / "scaler.joblib")
    preprocessing = load_preprocessing(tmp_path / "scaler.joblib", SHAPE)
    expected = scaler.transform(samples.reshape(-1, SHAPE.features)).reshape(samples.shape)
    np.testing.assert_allclose(preprocessing.apply(samples), expected, rtol=1e-9, atol=1e-9)
    assert preprocessing.source == scaler_class.__name__


def test_a_scaler_fitted_on_whole_sequences_is_carried_per_position(tmp_path):
    samples = raw_samples()
    scaler = StandardScaler().fit(samples.reshape(len(samples), -1))
    joblib.dump(scaler, tmp_path / "scaler.joblib")
    preprocessing = load_preprocessing(tmp_path / "scaler.joblib", SHAPE)
    assert preprocessing.scale.shape == (SHAPE.timesteps, SHAPE.features)
    expected = scaler.transform(samples.reshape(len(samples), -1)).reshape(samples.shape)
    np.testing.assert_allclose(preprocessing.apply(samples), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "normaliser",
    [QuantileTransformer(n_quantiles=20), PCA(n_components=4)],
    ids=["quantile", "pca"],
)
def test_a_normaliser_that_is_not_per_feature_affine_is_refused(tmp_path, normaliser):
    normaliser.fit(raw_samples(40).reshape(-1, SHAPE.features))
    joblib.dump(normaliser, tmp_path / "normaliser.joblib")
    with pytest.raises(InputFileError, match=r"not a per-feature affine.*StandardScaler"):
        load_preprocessing(tmp_path / "normaliser.joblib", SHAPE)


def test_a_normaliser_of_another_width_is_refused(tmp_path):
    joblib.dump(StandardScaler().fit(np.ones((5, 7))), tmp_path / "scaler.joblib")
    with pytest.raises(InputFileError, match="fitted on 7 features but the model reads 4"):
        load_preprocessing(tmp_path / "scaler.joblib", SHAPE)


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


def test_heldout_without_y_says_how_to_save_it(tmp_path):
    np.savez(tmp_path / "h.npz", X=raw_samples(3))
    with pytest.raises(InputFileError, match=r"lacks y.*np\.savez"):
        load_heldout(tmp_path / "h.npz", SHAPE, LABELS)


def test_heldout_with_nan_is_refused(tmp_path):
    samples = raw_samples(3)
    samples[1, 2, 3] = np.nan
    path = write_heldout(tmp_path / "h.npz", samples, ["a", "b", "c"])
    with pytest.raises(InputFileError, match="NaN or infinity"):
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
