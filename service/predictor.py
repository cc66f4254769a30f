"""Predict with a release bundle on the lite runtime, exactly as the service does.

The parity stage imports this same code, so what parity judges is what users are served.
"""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import BundleError, read_manifest, read_model_bytes
from service.runtime import LiteRuntime, select_runtime


class InputError(ValueError):
    """A client's input does not fit the model's contract; the message says what is expected."""


# What the manifest's output.kind may say, and the key each answer names its value with:
# only a distribution (rows sum to 1) is served as "probability".
OUTPUT_VALUE_KEYS = {"probability": "probability", "score": "score", "logit": "score"}


@dataclass(frozen=True)
class Contract:
    """What one sample looks like (any fixed shape) and what the model answers."""

    sample_shape: tuple[int, ...]
    labels: tuple[str, ...]
    output_kind: str = "probability"

    @property
    def sample_size(self) -> int:
        """Numbers in one sample."""
        return int(np.prod(self.sample_shape, dtype=np.int64))

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample as raw float32."""
        return 4 * self.sample_size

    @property
    def value_key(self) -> str:
        """The answer's name for the model's output value: `probability` or `score`."""
        return OUTPUT_VALUE_KEYS[self.output_kind]

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.sample_shape)
        return f"one sample of shape [{dims}] or a batch of shape [n, {dims}] of finite numbers"

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> "Contract":
        shape = manifest["input"]["shape"]
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise BundleError(
                f"manifest input shape {shape} is not a list of positive sizes; rebuild the bundle"
            )
        kind = (manifest.get("output") or {}).get("kind", "probability")
        kind = {"probabilities": "probability"}.get(kind, kind)  # bundles of schema 1
        if kind not in OUTPUT_VALUE_KEYS:
            raise BundleError(
                f"manifest output kind {kind!r} is unknown (expected one of "
                f"{', '.join(OUTPUT_VALUE_KEYS)}); rebuild the bundle"
            )
        return cls(tuple(int(d) for d in shape), tuple(manifest["labels"]), kind)


def _affine_from_manifest(preprocessing: dict[str, Any], contract: Contract):
    """(scale, offset) as float32 arrays that broadcast over (n, *sample_shape), or None."""
    kind = preprocessing.get("kind")
    if kind == "identity":
        return None
    if kind != "affine":
        raise BundleError(f"manifest preprocessing kind {kind!r} is unknown; rebuild the bundle")
    scale = np.asarray(preprocessing["scale"], dtype=np.float32)
    offset = np.asarray(preprocessing["offset"], dtype=np.float32)
    # Per feature (the last axis) or per position in the whole sample.
    allowed = (contract.sample_shape[-1:], contract.sample_shape)
    if scale.shape not in allowed or offset.shape != scale.shape:
        raise BundleError(
            f"manifest preprocessing has shape {scale.shape}/{offset.shape}, expected one of "
            f"{allowed}; rebuild the bundle"
        )
    return scale, offset


class Predictor:
    """A loaded bundle: validates raw samples, normalises them and runs the interpreter."""

    def __init__(
        self, model_dir: Path, num_threads: int = 1, runtime: LiteRuntime | None = None
    ) -> None:
        model_dir = Path(model_dir)
        self.manifest = read_manifest(model_dir)
        self.model_path = model_dir / self.manifest["model_file"]
        # The interpreter runs on these bytes, not on a mapping of the file: a file replaced or
        # truncated under a running worker can then never crash it (SIGBUS on a mapped page).
        model_bytes = read_model_bytes(self.model_path, self.manifest["sha256"])
        self.sha256: str = self.manifest["sha256"]
        self.contract = Contract.from_manifest(self.manifest)
        self._affine = _affine_from_manifest(self.manifest["preprocessing"], self.contract)
        self.runtime = runtime or select_runtime()
        try:
            self._interpreter = self.runtime.interpreter_class(
                model_content=model_bytes, num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BundleError(
                f"{self.model_path.name} cannot be loaded by {self.runtime.name} "
                f"{self.runtime.version}: {str(error).splitlines()[0][:200]}"
            ) from None
        self._model_bytes = model_bytes  # the interpreter reads from this buffer: keep it alive
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected_input = (1, *self.contract.sample_shape)
        if tuple(self._input["shape"]) != expected_input:
            raise BundleError(
                f"{self.model_path.name} takes input {tuple(self._input['shape'])} but the "
                f"manifest promises {expected_input}; rebuild the bundle"
            )
        if int(self._output["shape"][-1]) != len(self.contract.labels):
            raise BundleError(
                f"{self.model_path.name} has {int(self._output['shape'][-1])} outputs but the "
                f"manifest lists {len(self.contract.labels)} labels; rebuild the bundle"
            )
        # The interpreter is not thread-safe: set_tensor/invoke/get_tensor run under this lock.
        self._lock = threading.Lock()

    def as_batch(self, values: Any) -> np.ndarray:
        """Raw client values as a float32 batch (n, *sample_shape), or InputError."""
        try:
            batch = np.asarray(values, dtype=np.float32)
        except (ValueError, TypeError):
            raise InputError(f"input must be numbers only, in {self.contract.describe()}") from None
        if batch.shape == self.contract.sample_shape:
            batch = batch[np.newaxis]
        rank = len(self.contract.sample_shape) + 1
        if batch.ndim != rank or batch.shape[1:] != self.contract.sample_shape or not len(batch):
            raise InputError(
                f"input has shape {list(batch.shape)}; expected {self.contract.describe()}"
            )
        if not np.isfinite(batch).all():
            raise InputError(f"input holds NaN or infinity; expected {self.contract.describe()}")
        return batch

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """Apply the manifest's preprocessing (the user's scaler, as numbers)."""
        if self._affine is None:
            return batch
        scale, offset = self._affine
        with np.errstate(over="ignore", invalid="ignore"):  # the caller checks finiteness
            return batch * scale + offset

    def predict_proba(self, values: Any) -> np.ndarray:
        """The model's outputs, shape (n, classes), for raw (un-normalised) samples."""
        batch = self.normalise(self.as_batch(values))
        # Finite raw values can overflow to infinity once scaled (3e38 x a scale > 1).
        if not np.isfinite(batch).all():
            raise InputError(
                "input overflows float32 once normalised by the bundle's preprocessing; "
                f"expected {self.contract.describe()} within the range the model was trained on"
            )
        probabilities = np.empty((batch.shape[0], len(self.contract.labels)), dtype=np.float32)
        with self._lock:
            for row, sample in enumerate(batch):
                self._interpreter.set_tensor(self._input["index"], self._quantize(sample[None]))
                self._interpreter.invoke()
                probabilities[row] = self._dequantize(
                    self._interpreter.get_tensor(self._output["index"])
                )[0]
        return probabilities

    def predict(self, values: Any, top_k: int = 1) -> list[dict[str, Any]]:
        """For each sample: its label, that label's value and the top-k labels.

        The value is named `probability` for a distribution and `score` otherwise
        (independent sigmoid scores or logits); top-k is sorted by it either way.
        """
        return self.answers(self.predict_proba(values), top_k)

    def answers(self, outputs: np.ndarray, top_k: int = 1) -> list[dict[str, Any]]:
        """`predict`'s answers for outputs `predict_proba` returned."""
        top_k = max(1, min(top_k, len(self.contract.labels)))
        key, labels = self.contract.value_key, self.contract.labels
        answers = []
        for row in outputs:
            ranked = np.argsort(-row, kind="stable")[:top_k]
            answers.append(
                {
                    "label": labels[ranked[0]],
                    key: float(row[ranked[0]]),
                    "top_k": [{"label": labels[i], key: float(row[i])} for i in ranked],
                }
            )
        return answers

    def _quantize(self, sample: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return sample
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(sample / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, output: np.ndarray) -> np.ndarray:
        if output.dtype == np.float32:
            return output
        scale, zero_point = self._output["quantization"]
        return (output.astype(np.float32) - zero_point) * scale
