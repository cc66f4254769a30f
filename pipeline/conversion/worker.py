"""The convert stage's child process: everything that imports TensorFlow.

The TFLite converter can kill its own process (int8 quantization of a WHILE-loop LSTM
segfaults in TF 2.21), so it runs here and the stage reports the crash instead of dying.
Protocol: exit 0 and write `model.tflite` + `conversion.json` to the output folder, or exit
with USER_ERROR and print `convert-error: <reason>` as the last line on stderr.
"""

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow logs its start-up chatter at INFO; keep stage output to what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.inputs.files import (
    InputFileError,
    InputPaths,
    load_heldout,
    load_preprocessing,
)
from pipeline.inputs.keras_model import detect_output_kind, keras_outputs, load_keras_model
from pipeline.inputs.labels import load_labels
from pipeline.params.reading import read_section
from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace
from pipeline.versions import tool_versions

USER_ERROR = 2
ERROR_PREFIX = "convert-error: "
# How the converter names a TensorFlow op that has no TFLite builtin kernel.
NON_BUILTIN_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


def _configure(converter, quantization: str, representative: np.ndarray, batch_size: int) -> None:
    import tensorflow as tf

    # Builtins only: a Flex (Select TF ops) model cannot be served by either lite runtime.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Each sample repeated to the signature's batch: the same calibration at every size.
        converter.representative_dataset = lambda: (
            [np.repeat(sample[None], batch_size, axis=0)] for sample in representative
        )


def convert_at_batch(
    model, sample_shape, batch_size: int, quantization: str, representative, scratch_dir
) -> tuple[bytes, float]:
    """The model as TFLite with a fixed batch of `batch_size`, and the export's seconds.

    A fixed batch in the signature: from_keras_model fails on Keras 3 LSTMs
    (TensorListReserve needs a static element_shape), and resizing a batch-1 model's input
    later fails in XNNPack, so each batch size is its own export.
    """
    import tensorflow as tf

    started = time.perf_counter()
    # Inside the stage's own scratch folder, which the parent removes however this process
    # ends: a converter that crashes (SIGSEGV) would leave an export in /tmp.
    with tempfile.TemporaryDirectory(prefix="saved-model-", dir=scratch_dir) as saved_model_dir:
        model.export(
            saved_model_dir,
            format="tf_saved_model",
            input_signature=[tf.TensorSpec((batch_size, *sample_shape), tf.float32)],
            verbose=False,
        )
        exported = time.perf_counter()
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        _configure(converter, quantization, representative.astype(np.float32), batch_size)
        try:
            return converter.convert(), exported - started
        except Exception as error:
            ops = sorted(set(NON_BUILTIN_OP.findall(str(error))))
            if ops:
                raise InputFileError(
                    f"it needs TensorFlow ops with no TFLite builtin kernel: "
                    f"{', '.join(ops)}; a Flex (Select TF ops) model cannot run on the lite "
                    "runtime, so replace those layers with builtin-friendly ones"
                ) from None
            raise InputFileError(f"the TFLite converter rejected it: {str(error)[-400:]}") from None


def convert_worker(job: dict[str, Any]) -> None:
    """Load the user's files, convert the model to TFLite and write the result to job['out_dir']."""
    started = time.perf_counter()
    inputs = read_section(InputsParams, job["inputs"], "inputs")
    paths = InputPaths.from_params(inputs, Workspace(Path(job["workspace"])))
    model, shape = load_keras_model(paths)
    labels = load_labels(paths.labels, shape)
    preprocessing = load_preprocessing(paths.normaliser, shape)
    samples, _ = load_heldout(paths.heldout, shape, labels)
    # What the outputs are decides how the service names them: only a distribution is a
    # probability. Judged on the held-out set, through the user's own normaliser.
    output_kind, output_evidence = detect_output_kind(keras_outputs(paths, model, samples))
    loaded = time.perf_counter()

    representative = samples[: job["representative_samples"]]
    if preprocessing is not None:
        representative = preprocessing.apply(representative)
    out_dir = Path(job["out_dir"])
    exported_seconds = 0.0
    # Batch 1 serves a lone sample; the batched model serves concurrent samples together.
    for batch_size, file_name in ((1, "model.tflite"), (job["batch_size"], "model_batched.tflite")):
        try:
            tflite_bytes, export_seconds = convert_at_batch(
                model, shape.sample_shape, batch_size, job["quantization"], representative, out_dir
            )
        except InputFileError as failure:
            raise InputFileError(f"model {paths.model}: {failure}") from None
        (out_dir / file_name).write_bytes(tflite_bytes)
        exported_seconds += export_seconds
    loaded_to_converted = time.perf_counter() - loaded
    conversion = {
        "sample_shape": list(shape.sample_shape),
        "classes": shape.classes,
        "output_kind": output_kind,
        "output_evidence": output_evidence,
        "labels": labels,
        "preprocessing": (
            preprocessing.as_manifest() if preprocessing is not None else {"kind": "identity"}
        ),
        "parameters": int(model.count_params()),
        "durations_seconds": {
            "load_inputs": round(loaded - started, 3),
            "export_saved_model": round(exported_seconds, 3),
            "convert": round(loaded_to_converted - exported_seconds, 3),
        },
        "tools": tool_versions(),
    }
    (out_dir / "conversion.json").write_text(json.dumps(conversion), encoding="utf-8")


if __name__ == "__main__":
    try:
        convert_worker(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    except InputFileError as failure:
        # One line: the parent relays the last line of stderr as the stage's reason.
        print(ERROR_PREFIX + " ".join(str(failure).split()), file=sys.stderr)
        sys.exit(USER_ERROR)
