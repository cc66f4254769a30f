"""The candidate bundle on the lite interpreter, as the peer servers load it (numpy + LiteRT only).

Runs in the peers' own venvs, so it imports nothing from this repository: it reads the bundle's
manifest.json (model file, input shape, labels, normaliser) and predicts one batch-1 invoke()
per sample, as the service does. Float32 models only: the peers serve the float32 candidate.
"""

import json
import os
import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class LiteClassifier:
    """A bundle folder's model, labels and affine normaliser on one interpreter."""

    def __init__(self, bundle_dir: str) -> None:
        bundle = Path(bundle_dir)
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        self.labels = list(manifest["labels"])
        self.sample_shape = tuple(manifest["input"]["shape"])
        preprocessing = manifest["preprocessing"]
        self.affine = None
        if preprocessing.get("kind") == "affine":
            self.affine = (
                np.asarray(preprocessing["scale"], np.float32),
                np.asarray(preprocessing["offset"], np.float32),
            )
        # The same thread count the service runs with (render.yaml's TFLITE_NUM_THREADS).
        threads = int(os.environ.get("TFLITE_NUM_THREADS", "1"))
        self.interpreter = Interpreter(
            model_path=str(bundle / manifest["model_file"]), num_threads=threads
        )
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        if self.input["dtype"] != np.float32:
            raise ValueError(
                f"{manifest['model_file']} takes {self.input['dtype']} input; the peer servers "
                "serve float32 bundles only (convert.quantization none, float16 or dynamic)"
            )
        # The interpreter is not thread-safe; a server may call from several threads.
        self.lock = threading.Lock()

    def probabilities(self, values) -> np.ndarray:
        """(n, classes) outputs for raw samples shaped (n, *sample_shape) or one sample."""
        batch = np.asarray(values, dtype=np.float32)
        if batch.shape == self.sample_shape:
            batch = batch[np.newaxis]
        if batch.shape[1:] != self.sample_shape:
            raise ValueError(
                f"input has shape {list(batch.shape)}; expected [n, *{self.sample_shape}]"
            )
        if self.affine is not None:
            batch = batch * self.affine[0] + self.affine[1]
        rows = []
        with self.lock:
            for sample in batch:
                self.interpreter.set_tensor(self.input["index"], sample[np.newaxis])
                self.interpreter.invoke()
                rows.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        return np.stack(rows)

    def top1(self, probabilities: np.ndarray) -> list[dict]:
        """Each row's label and its probability, as the service answers."""
        best = probabilities.argmax(axis=1)
        return [
            {"label": self.labels[index], "probability": float(row[index])}
            for index, row in zip(best, probabilities, strict=True)
        ]
