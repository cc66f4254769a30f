"""Bring your own model, end to end and for real: each kind of model a user brings is named by
params.yaml alone, converted, checked by parity against Keras, and served by the real service."""

import json

import numpy as np
import pytest
import requests
from app_helpers import FLOAT32
from user_files import class_signal_samples, write_user_files
from workspaces import convert_and_check, make_workspace, run_stage

from pipeline.verdicts import read_json

pytestmark = pytest.mark.slow
# A model's labels in its own output order, which sorting would scramble ('10' < '2').
UNSORTED_LABELS = ["1", "10", "2", "B", "Nothing", "C"]


def separable_samples(count: int, sample_shape: tuple, classes: int, seed: int = 0):
    """Raw samples whose class moves its own slice of the last axis, and their class ids."""
    rng = np.random.default_rng(seed)
    class_ids = rng.integers(0, classes, count)
    samples = rng.normal(10.0, 2.0, size=(count, *sample_shape)).astype(np.float32)
    width = sample_shape[-1] // classes
    for class_id in range(classes):
        samples[class_ids == class_id, ..., class_id * width : (class_id + 1) * width] += 6.0
    return samples, class_ids


def trained_landmark_classifier():
    """A Dense classifier on a flat (63,) vector, trained (a few seconds) to about 1.0."""
    import keras

    keras.utils.set_random_seed(2)
    samples, class_ids = separable_samples(300, (63,), len(UNSORTED_LABELS))
    mean, spread = samples.mean(axis=0), samples.std(axis=0)
    model = keras.Sequential(
        [
            keras.Input((63,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(len(UNSORTED_LABELS), activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit((samples - mean) / spread, class_ids, epochs=15, batch_size=32, verbose=0)
    return model


def predict(service, body, top_k: int = 3, **kwargs):
    response = requests.post(
        f"{service.url}/api/predict/?top_k={top_k}", timeout=10, **{**kwargs, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_a_flat_vector_model_with_an_unsorted_label_list(tmp_path, start_service):
    samples, class_ids = separable_samples(60, (63,), len(UNSORTED_LABELS), seed=1)
    inputs = write_user_files(
        tmp_path / "user",
        trained_landmark_classifier(),
        labels=UNSORTED_LABELS,
        labels_as="txt",
        heldout_x=samples,
        heldout_y=np.array(UNSORTED_LABELS)[class_ids],
    )
    workspace, checked = convert_and_check(tmp_path, inputs, min_accuracy=0.9)
    assert checked.returncode == 0, checked.stderr[-3000:]
    manifest = read_json(workspace.candidate_dir / "manifest.json")
    assert manifest["input"]["shape"] == [63]
    assert manifest["labels"] == UNSORTED_LABELS
    assert manifest["output"]["kind"] == "probability"
    assert read_json(workspace.report_path("parity"))["measures"]["accuracy"]["value"] >= 0.9

    service = start_service(workspace.candidate_dir)
    answers = predict(service, {"json": {"instances": samples[:5].tolist()}})
    assert [a["label"] for a in answers] == [UNSORTED_LABELS[c] for c in class_ids[:5]]
    one = predict(service, {"data": samples[0].tobytes(), "headers": FLOAT32})
    assert one[0]["label"] == UNSORTED_LABELS[class_ids[0]] and "probability" in one[0]


def small_image_model():
    import keras

    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_an_image_model_with_a_json_label_list_and_no_normaliser(tmp_path, start_service):
    labels = ["cat", "dog", "bird"]
    inputs = write_user_files(
        tmp_path / "user", small_image_model(), normaliser=None, labels=labels, labels_as="json"
    )
    workspace, checked = convert_and_check(tmp_path, inputs)
    assert checked.returncode == 0, checked.stderr[-3000:]
    manifest = read_json(workspace.candidate_dir / "manifest.json")
    assert manifest["input"]["shape"] == [8, 8, 3]
    assert manifest["preprocessing"] == {"kind": "identity"}
    assert "CONV_2D" in read_json(workspace.report_path("convert"))["ops"]

    images = np.load(inputs["heldout"])["X"][:2]
    service = start_service(workspace.candidate_dir)
    as_json = predict(service, {"json": {"instances": images[0].tolist()}})
    as_bytes = predict(service, {"data": images.tobytes(), "headers": FLOAT32})
    assert len(as_json) == 1 and len(as_bytes) == 2
    assert as_json[0]["label"] in labels
    assert as_json[0]["probability"] == pytest.approx(as_bytes[0]["probability"], abs=1e-6)
    metadata = requests.get(f"{service.url}/api/metadata/", timeout=5)
    assert metadata.status_code == 200 and "[8, 8, 3]" in json.dumps(metadata.json())


def test_independent_sigmoid_outputs_are_served_as_scores(tmp_path, start_service):
    import keras

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(4, activation="sigmoid", bias_initializer="ones")]
    )
    inputs = write_user_files(tmp_path / "user", model, labels=["w", "x", "y", "z"])
    workspace, checked = convert_and_check(tmp_path, inputs)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert read_json(workspace.candidate_dir / "manifest.json")["output"]["kind"] == "score"
    assert read_json(workspace.report_path("parity"))["served_as"] == "score"

    sample = np.load(inputs["heldout"])["X"][0]
    service = start_service(workspace.candidate_dir)
    answer = predict(service, {"json": {"instances": sample.tolist()}}, top_k=4)[0]
    assert "probability" not in answer and "score" in answer
    scores = [entry["score"] for entry in answer["top_k"]]
    assert scores == sorted(scores, reverse=True) and answer["score"] == scores[0]


def test_one_sigmoid_output_is_judged_on_its_class_and_the_rest(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    samples, is_dog = class_signal_samples(400, 2, shift=2.0, seed=2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(samples[:300], is_dog[:300], epochs=10, batch_size=32, verbose=0)
    inputs = write_user_files(
        tmp_path / "user",
        model,
        normaliser=None,
        labels=["dog"],
        labels_as="txt",
        heldout_x=samples[300:],
        heldout_y=is_dog[300:],  # 1 dog, 0 not
    )
    workspace, checked = convert_and_check(tmp_path, inputs, min_accuracy=0.8)
    assert checked.returncode == 0, checked.stderr[-3000:]
    report = read_json(workspace.report_path("parity"))
    assert report["served_as"] == "score" and report["accuracy"]["keras"] >= 0.8
    rows = {row["label"]: row["samples"] for row in report["per_class"]}
    assert rows == {"dog": int(is_dog[300:].sum()), "not dog": int((1 - is_dog[300:]).sum())}


CUSTOM_LAYER_MODULE = '''
import keras


class BasicPreprocessing(keras.layers.Layer):
    """Scales its input by a fixed factor: a layer Keras cannot rebuild on its own."""

    def __init__(self, factor=0.5, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''


def custom_layer_model(user_dir):
    import importlib.util

    import keras

    user_dir.mkdir(parents=True, exist_ok=True)
    module_path = user_dir / "custom_layers.py"
    module_path.write_text(CUSTOM_LAYER_MODULE)
    spec = importlib.util.spec_from_file_location("custom_layers", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(6)
    return keras.Sequential(
        [
            keras.Input((12,)),
            module.BasicPreprocessing(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    ), module_path


def test_a_custom_layer_loads_through_inputs_custom_objects(tmp_path, start_service):
    model, module_path = custom_layer_model(tmp_path / "user")
    inputs = write_user_files(tmp_path / "user", model)
    # Without the module: the cause named whole, and the fix.
    workspace = make_workspace(tmp_path / "bare", inputs=inputs)
    failed = run_stage("pipeline.stages.convert", workspace, check=False)
    reason = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode != 0
    assert "'BasicPreprocessing'" in reason and "inputs.custom_objects" in reason
    assert "Could not locate class 'BasicPreprocessing'" in reason

    workspace, checked = convert_and_check(tmp_path, {**inputs, "custom_objects": str(module_path)})
    assert checked.returncode == 0, checked.stderr[-3000:]
    sample = np.load(inputs["heldout"])["X"][:1]
    service = start_service(workspace.candidate_dir)
    assert predict(service, {"json": {"instances": sample.tolist()}})[0]["label"].startswith(
        "class_"
    )


def test_integer_class_indices_as_y_with_a_label_encoder_and_logit_outputs(tmp_path, start_service):
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((6, 5)), keras.layers.Flatten(), keras.layers.Dense(3)])
    inputs = write_user_files(tmp_path / "user", model, integer_y=True)
    # label_encoder, another name for the labels key, works too.
    inputs["label_encoder"] = inputs.pop("labels")
    assert np.load(inputs["heldout"])["y"].dtype.kind == "i"
    workspace, checked = convert_and_check(tmp_path, inputs)
    assert checked.returncode == 0, checked.stderr[-3000:]
    report = read_json(workspace.report_path("parity"))
    assert report["output_kind"] == "logit" and report["served_as"] == "score"
    assert {row["label"] for row in report["per_class"]} == {"class_00", "class_01", "class_02"}

    sample = np.load(inputs["heldout"])["X"][0]
    service = start_service(workspace.candidate_dir)
    assert "score" in predict(service, {"data": sample.tobytes(), "headers": FLOAT32})[0]


def test_a_dynamic_dimension_other_than_the_batch_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    model.save(user_dir / "model.keras")
    (user_dir / "labels.txt").write_text("a\nb\n")
    np.savez(user_dir / "heldout.npz", X=np.zeros((2, 3, 4)), y=np.array([0, 1]))
    inputs = {
        "folder": str(user_dir),
        "model": str(user_dir / "model.keras"),
        "labels": str(user_dir / "labels.txt"),
        "normaliser": "none",
        "heldout": str(user_dir / "heldout.npz"),
    }
    workspace = make_workspace(tmp_path / "ws", inputs=inputs)
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    assert completed.returncode != 0
    reason = completed.stderr.strip().splitlines()[-1]
    assert "(None, None, 4)" in reason and "[1] are not fixed" in reason
    assert "keras.Input(shape=...)" in reason
    assert not workspace.candidate_dir.exists()
