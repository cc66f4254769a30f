"""One serving path in one process: load, predict once (cold start), then time predictions.

Run by benchmarks/run.py inside a memory cgroup; prints one JSON line on stdout. Paths:
  keras-predict  Keras `model.predict` under TensorFlow (the seed's serving code)
  tf-function    a `tf.function` with a fixed input signature
  lite           service.predictor on a bundle (ai-edge-litert or tflite-runtime)
  bare           the bare interpreter: set_tensor/invoke/get_tensor, nothing else
"""

import argparse
import json
import sys
import time

START = time.perf_counter()  # as close to process start as Python allows

import numpy as np  # noqa: E402


def keras_predictor(model_path: str, mode: str):
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)
    if mode == "keras-predict":
        return lambda batch: model.predict(batch, verbose=0)
    signature = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    serve = tf.function(lambda batch: model(batch, training=False), input_signature=[signature])
    return lambda batch: serve(tf.constant(batch)).numpy()


def lite_predictor(bundle_dir: str):
    from service.predictor import Predictor

    predictor = Predictor(bundle_dir)
    # Raw input: the predictor normalises it, as the service does.
    return predictor.predict_proba, predictor.runtime.name


def bare_predictor(bundle_dir: str):
    from pathlib import Path

    from service.runtime import select_runtime

    runtime = select_runtime()
    interpreter = runtime.interpreter_class(
        model_path=str(Path(bundle_dir) / "model.tflite"), num_threads=1
    )
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def predict(batch):
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return predict, runtime.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--path", required=True, choices=["keras-predict", "tf-function", "lite", "bare"]
    )
    parser.add_argument("--model", required=True, help=".keras file, or a bundle folder for lite")
    parser.add_argument(
        "--samples", required=True, help="npz with X (already normalised for keras)"
    )
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with np.load(args.samples) as archive:
        samples = archive["X"].astype(np.float32)
    runtime = "tensorflow"
    if args.path == "lite":
        predict, runtime = lite_predictor(args.model)
    elif args.path == "bare":
        predict, runtime = bare_predictor(args.model)
    else:
        predict = keras_predictor(args.model, args.path)
    predict(samples[:1])
    cold_start = time.perf_counter() - START
    latencies = []
    for index in range(args.count):
        sample = samples[index % len(samples)][None]
        started = time.perf_counter()
        predict(sample)
        latencies.append((time.perf_counter() - started) * 1000)
    json.dump(
        {"cold_start_seconds": cold_start, "latencies_ms": latencies, "runtime": runtime},
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
