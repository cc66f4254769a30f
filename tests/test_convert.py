"""The convert stage, for real: TensorFlow's converter in a child, judged on the lite runtime."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from user_files import write_user_files
from workspaces import make_workspace, run_stage, workspace_like

from pipeline.stages.convert import ConverterWorkerError, run_worker
from pipeline.verdicts import read_json
from service.bundle import sha256_of
from service.errors import Refusal
from service.predictor import Predictor

pytestmark = pytest.mark.slow
TIMESTEPS, FEATURES, CLASSES = 12, 8, 4


def small_model(kind: str):
    """A small sequence classifier of the given recurrent kind, random weights."""
    import keras

    keras.utils.set_random_seed(1)
    recurrent = {
        "lstm": [keras.layers.LSTM(16)],
        "gru": [keras.layers.GRU(16)],
        "bidirectional": [keras.layers.Bidirectional(keras.layers.LSTM(8))],
        "masked": [keras.layers.Masking(mask_value=0.0), keras.layers.LSTM(16)],
        "flex": [
            # MatrixDeterminant has no TFLite builtin kernel: only Flex could run it.
            # A marshalled lambda keeps no globals: it imports keras itself.
            keras.layers.Lambda(
                lambda x: __import__("keras").ops.reshape(
                    __import__("keras").ops.det(
                        __import__("keras").ops.reshape(x[:, :8], (-1, 8, 8))
                    ),
                    (-1, 1),
                ),
                output_shape=(1,),
            ),
        ],
    }[kind]
    inputs = keras.Input((TIMESTEPS, FEATURES))
    hidden = inputs
    for layer in [*recurrent, keras.layers.Flatten()]:
        hidden = layer(hidden)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


def keras_reference(inputs: dict, samples: np.ndarray) -> np.ndarray:
    import joblib
    import keras

    model = keras.saving.load_model(inputs["model"], safe_mode=False)
    if inputs["normaliser"] != "none":
        scaler = joblib.load(inputs["normaliser"])
        samples = scaler.transform(samples.reshape(-1, FEATURES)).reshape(samples.shape)
    return model.predict(samples.astype(np.float32), verbose=0)


def convert_user_model(tmp_path, model, **file_options):
    inputs = write_user_files(tmp_path / "user", model, **file_options)
    workspace = make_workspace(tmp_path / "ws", inputs=inputs)
    return workspace, inputs, run_stage("pipeline.stages.convert", workspace, check=False)


def test_demo_candidate_has_a_complete_manifest(demo_workspace):
    manifest = json.loads((demo_workspace.candidate_dir / "manifest.json").read_text())
    model_path = demo_workspace.candidate_dir / "model.tflite"
    assert manifest["sha256"] == sha256_of(model_path)
    assert manifest["files"]["model.tflite"]["bytes"] == model_path.stat().st_size
    assert manifest["input"]["shape"] == [65, 243]
    # In the model's output order, as labels.txt lists them: not sorted.
    labels_txt = (demo_workspace.demo_dir / "labels.txt").read_text().split()
    assert manifest["labels"] == labels_txt and labels_txt != sorted(labels_txt)
    assert manifest["output"]["kind"] == "probability"
    assert manifest["preprocessing"]["kind"] == "affine"
    assert len(manifest["preprocessing"]["scale"]) == 243
    assert manifest["source_model"]["sha256"] == sha256_of(demo_workspace.demo_dir / "model.keras")
    assert manifest["quantization"] == "none"
    assert {"tensorflow-cpu", "keras", "ai-edge-litert"} <= set(manifest["tools"])
    # The same model with a fixed batch (params.yaml convert.batch_size), named and hashed.
    batched_path = demo_workspace.candidate_dir / "model_batched.tflite"
    assert manifest["batched"] == {
        "file": "model_batched.tflite",
        "sha256": sha256_of(batched_path),
        "batch_size": 4,
    }
    assert manifest["files"]["model_batched.tflite"]["bytes"] == batched_path.stat().st_size


def test_demo_report_lists_builtin_ops_and_judges_the_candidate(demo_workspace):
    report = read_json(demo_workspace.report_path("convert"))
    assert report["passed"] is True
    assert report["candidate_sha256"] == sha256_of(demo_workspace.candidate_dir / "model.tflite")
    assert "WHILE" in report["ops"] and "FULLY_CONNECTED" in report["ops"]
    assert not any(op.startswith("Flex") for op in report["ops"])
    assert report["sizes_bytes"]["tflite"] < report["sizes_bytes"]["source_model"]


@pytest.mark.parametrize("kind", ["gru", "bidirectional", "masked"])
def test_recurrent_models_convert_and_match_keras(tmp_path, kind):
    workspace, inputs, completed = convert_user_model(tmp_path, small_model(kind))
    assert completed.returncode == 0, completed.stderr
    samples = np.load(inputs["heldout"])["X"]
    if kind == "masked":
        samples[:, TIMESTEPS // 2 :, :] = 0.0  # padded frames, as a masked model receives them
    predictor = Predictor(workspace.candidate_dir)
    for route in ("single", "batched"):  # every sample through each model the bundle holds
        served = predictor.predict_proba(samples, route=route)
        np.testing.assert_allclose(served, keras_reference(inputs, samples), atol=1e-5)


def test_a_batch_size_that_cannot_be_exported_is_refused_naming_the_key(tmp_path):
    workspace = make_workspace(tmp_path / "ws", convert={"batch_size": 1})
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    assert completed.returncode != 0
    assert "convert.batch_size=1 is not usable" in completed.stderr
    assert not workspace.candidate_dir.exists()


def test_legacy_h5_model_without_normaliser_converts(tmp_path):
    workspace, inputs, completed = convert_user_model(
        tmp_path, small_model("lstm"), normaliser=None, model_name="model.h5"
    )
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads((workspace.candidate_dir / "manifest.json").read_text())
    assert manifest["preprocessing"] == {"kind": "identity"}
    samples = np.load(inputs["heldout"])["X"]
    served = Predictor(workspace.candidate_dir).predict_proba(samples)
    np.testing.assert_allclose(served, keras_reference(inputs, samples), atol=1e-5)


def test_model_needing_flex_ops_fails_naming_them_and_leaves_no_candidate(tmp_path):
    inputs = write_user_files(tmp_path / "user", small_model("flex"))
    inputs["allow_unsafe_deserialization"] = True
    workspace = make_workspace(tmp_path / "ws", inputs=inputs)
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    assert completed.returncode != 0
    last_line = completed.stderr.strip().splitlines()[-1]
    assert "MatrixDeterminant" in last_line and "Flex" in last_line
    assert not workspace.candidate_dir.exists()
    assert read_json(workspace.report_path("convert"))["passed"] is False


def test_lambda_model_is_refused_unless_the_user_trusts_it(tmp_path):
    _, _, completed = convert_user_model(tmp_path, small_model("flex"))
    assert completed.returncode != 0
    assert "allow_unsafe_deserialization" in completed.stderr.strip().splitlines()[-1]


def test_missing_model_fails_in_one_line_and_writes_nothing(tmp_path):
    inputs = write_user_files(tmp_path / "user", small_model("lstm"))
    inputs["model"] = str(tmp_path / "user" / "gone.keras")
    workspace = make_workspace(tmp_path / "ws", inputs=inputs)
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    assert completed.returncode != 0
    assert completed.stderr.strip().splitlines()[-1].startswith("convert failed: model ")
    assert "gone.keras does not exist" in completed.stderr
    assert not workspace.candidate_dir.exists()
    assert not (workspace.build_dir / ".candidate.partial").exists()


def test_a_converter_that_overruns_its_deadline_is_stopped_and_leaves_nothing(
    demo_workspace, tmp_path
):
    # A copy of a good candidate is in place: a failed run must remove it, not leave it stale.
    workspace = workspace_like(demo_workspace, tmp_path / "ws", convert={"timeout_seconds": 0.5})
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    assert completed.returncode != 0
    assert "timeout_seconds=0.5" in completed.stderr
    assert "raise convert.timeout_seconds in params.yaml" in completed.stderr
    assert not workspace.candidate_dir.exists()


@pytest.mark.parametrize("quantization", ["float16", "dynamic", "int8"])
def test_each_quantization_converts_or_fails_with_a_clear_reason(
    demo_workspace, tmp_path, quantization
):
    workspace = workspace_like(
        demo_workspace, tmp_path / "ws", convert={"quantization": quantization}
    )
    exports_before = set(Path(tempfile.gettempdir()).glob("*/saved_model.pb"))
    completed = run_stage("pipeline.stages.convert", workspace, check=False)
    report = read_json(workspace.report_path("convert"))
    # Crashed or not, the converter's SavedModel export is gone with its scratch folder.
    assert set(Path(tempfile.gettempdir()).glob("*/saved_model.pb")) <= exports_before
    assert not (workspace.build_dir / ".candidate.partial").exists()
    if completed.returncode == 0:
        assert report["passed"] and report["quantization"] == quantization
        baseline = read_json(demo_workspace.report_path("convert"))
        assert report["sizes_bytes"]["tflite"] < baseline["sizes_bytes"]["tflite"]
    else:
        # int8 of a WHILE-loop LSTM crashes TF 2.21's converter (FACTS.md): a clean failure.
        assert quantization == "int8", completed.stderr
        assert "crashed (SIGSEGV)" in report["reason"]
        assert not workspace.candidate_dir.exists()


def test_a_worker_that_dies_of_our_own_bug_is_an_internal_error_not_a_refusal(tmp_path, capfd):
    # A job the stage would never write: the worker dies of an uncaught KeyError (exit 1).
    with pytest.raises(ConverterWorkerError) as failed:
        run_worker({"out_dir": str(tmp_path), "quantization": "none"}, timeout_seconds=300)
    assert not isinstance(failed.value, Refusal)
    assert str(failed.value).startswith("internal error: the conversion worker exited with code 1")
    assert str(failed.value).endswith("please report it")
    echoed = capfd.readouterr().err
    assert "Traceback (most recent call last)" in echoed and "KeyError" in echoed
