"""Keras 2 `.h5` models: the layer arguments Keras 2 wrote that Keras 3 refuses are dropped
where they change no answer, so the user's own file converts and passes parity as it is."""

import numpy as np
import pytest
from user_files import save_as_keras2_h5, write_user_files
from workspaces import convert_and_check

from pipeline.inputs.files import InputFileError, InputPaths
from pipeline.inputs.keras_model import load_keras_model
from pipeline.params.reading import read_section
from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace

pytestmark = pytest.mark.slow  # TensorFlow

# What Keras 2 (tf_keras 2.21) writes in these layers' configs and Keras 3 does not take.
KERAS2_ARGUMENTS = {
    "LSTM": {"time_major": False},
    "GRU": {"time_major": False},
    "SimpleRNN": {"time_major": False},
    "SeparableConv1D": {
        "groups": 1,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "kernel_regularizer": None,
        "kernel_constraint": None,
    },
    "DepthwiseConv1D": {"groups": 1},
    "Conv1DTranspose": {"groups": 1},
    "SpatialDropout1D": {"trainable": True, "noise_shape": None},
}


def every_listed_layer():
    """A small sequence model holding every layer whose Keras 2 arguments are dropped."""
    import keras

    keras.utils.set_random_seed(12)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((8, 3)),
            layers.SeparableConv1D(4, 3, padding="same"),
            layers.DepthwiseConv1D(3, padding="same"),
            layers.Conv1DTranspose(4, 3, padding="same"),
            layers.SpatialDropout1D(0.1),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
            layers.GRU(3, return_sequences=True),
            layers.SimpleRNN(3),
            layers.Dense(2, activation="softmax"),
        ]
    )


def load(path):
    inputs = {"folder": str(path.parent), "model": str(path), "labels": "l", "heldout": "h"}
    section = read_section(InputsParams, inputs, "inputs")
    return load_keras_model(InputPaths.from_params(section, Workspace(path.parent)))


def test_every_listed_keras2_argument_loads_and_answers_as_saved(tmp_path, capsys):
    model = every_listed_layer()
    h5 = save_as_keras2_h5(model, tmp_path / "keras2.h5", KERAS2_ARGUMENTS)
    before = h5.read_bytes()
    loaded, shape = load(h5)
    # The user is told their config was rewritten, and what went.
    said = capsys.readouterr().out
    assert f"model {h5} holds Keras 2 arguments Keras 3 no longer takes" in said
    assert "(your file is unchanged)" in said and "time_major=False" in said
    samples = np.random.default_rng(0).normal(size=(5, 8, 3)).astype(np.float32)
    assert shape.sample_shape == (8, 3) and shape.classes == 2
    np.testing.assert_allclose(
        loaded.predict(samples, verbose=0), model.predict(samples, verbose=0)
    )
    assert h5.read_bytes() == before  # the user's file stays as it was


def test_time_major_true_is_refused_naming_the_layer_and_the_fix(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(2), keras.layers.Dense(2)])
    h5 = save_as_keras2_h5(model, tmp_path / "keras2.h5", {"LSTM": {"time_major": True}})
    with pytest.raises(InputFileError) as refused:
        load(h5)
    reason = str(refused.value)
    assert f"model {h5}: its LSTM layer was saved with arguments Keras 3 does not take" in reason
    assert "{'time_major': True}" in reason and "model.save('model.keras')" in reason


def test_a_keras2_lstm_h5_converts_and_passes_parity(tmp_path):
    import keras

    keras.utils.set_random_seed(8)
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2, activation="softmax")]
    )
    inputs = write_user_files(tmp_path / "user", model, normaliser=None, labels=["a", "b"])
    keras2 = save_as_keras2_h5(
        model, tmp_path / "user" / "lstm.h5", {"LSTM": KERAS2_ARGUMENTS["LSTM"]}
    )
    _, checked = convert_and_check(tmp_path, {**inputs, "model": str(keras2)})
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "parity passed for none" in checked.stdout
