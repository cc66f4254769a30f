"""The user's normaliser and held-out set, and where params.yaml says the files are
(pipeline/inputs/files.py): a normaliser becomes numbers that reproduce it or is refused naming
why, a held-out set loads as the model takes it or is refused naming the fix, and a file
outside the inputs folder is refused."""

import joblib
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
from user_files import SHAPE, inputs_params

from pipeline.inputs.files import (
    InputFileError,
    InputPaths,
    ModelShape,
    load_heldout,
    load_preprocessing,
)
from pipeline.paths import Workspace

FEATURES = SHAPE.sample_shape[-1]
LABELS = ["a", "b", "c"]


def raw_samples(count: int = 10, shape: ModelShape = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, size=(count, *shape.sample_shape))


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


class BrokenScaler:
    """Pickled like a scaler, with a transform() that raises on any input."""

    n_features_in_ = 4

    def transform(self, rows):
        raise ValueError("fit was never called")


def test_a_normaliser_that_fails_on_the_probe_names_the_fix(tmp_path):
    joblib.dump(BrokenScaler(), tmp_path / "scaler.joblib")
    with pytest.raises(InputFileError) as refused:
        load_preprocessing(tmp_path / "scaler.joblib", SHAPE)
    assert "failed on a probe of 4 features (ValueError: fit was never called)" in str(
        refused.value
    )
    assert "save the fitted scaler the model was trained with" in str(refused.value)
    assert "inputs.normaliser: none" in str(refused.value)


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


def test_class_indices_saved_as_floats_are_refused_saying_to_save_integers(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(3), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(InputFileError) as refused:
        load_heldout(path, SHAPE, LABELS)
    assert "does not know: ['0.0', '1.0', '2.0']" in str(refused.value)
    assert str(refused.value).endswith("save y as integer class indices (y.astype(int))")


def test_float_y_that_the_label_list_names_are_labels(tmp_path):
    path = write_heldout(tmp_path / "h.npz", raw_samples(2), np.array([1.0, 2.0]))
    assert load_heldout(path, SHAPE, ["2.0", "1.0", "0.0"])[1].tolist() == ["1.0", "2.0"]


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
