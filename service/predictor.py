"""Predict with a release bundle on the lite runtime, exactly as the service does.

The parity stage imports this same code, so what parity judges is what users are served.
"""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import MANIFEST_NAME, BundleError, read_manifest, read_model_bytes
from service.interpreter import BatchRouter, FixedBatchInterpreter
from service.runtime import LiteRuntime, select_runtime

# A batch-N invoke costs less than N batch-1 invokes, but not much less (benchmarks/batch_sweep.py
# measures it): padding a short group pays once it fills about three quarters of the batch.
DEFAULT_PAD_FRACTION = 0.75
# Up to this many labels, answers rank them with Python's sort rather than numpy's.
FEW_LABELS = 64


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
    """A loaded bundle: validates raw samples, normalises them and runs the interpreters.

    `pad_fraction`: a short group of samples is padded to the batched model's size when it
    fills at least this fraction of it (service/interpreter.py says why).
    """

    def __init__(
        self,
        model_dir: Path,
        num_threads: int = 1,
        runtime: LiteRuntime | None = None,
        pad_fraction: float = DEFAULT_PAD_FRACTION,
    ) -> None:
        model_dir = Path(model_dir)
        self.manifest = read_manifest(model_dir)
        try:  # a field of the wrong kind is the bundle's fault, not a bug of the service
            self.model_path = model_dir / self.manifest["model_file"]
            self.contract = Contract.from_manifest(self.manifest)
            self._affine = _affine_from_manifest(self.manifest["preprocessing"], self.contract)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BundleError(
                f"{MANIFEST_NAME} has a field of the wrong shape ({type(error).__name__}: "
                f"{error}); rebuild the bundle with this version of the pipeline"
            ) from None
        # The interpreter runs on these bytes, not on a mapping of the file: a file replaced or
        # truncated under a running worker can then never crash it (SIGBUS on a mapped page).
        model_bytes = read_model_bytes(self.model_path, self.manifest["sha256"])
        self.sha256: str = self.manifest["sha256"]
        self.runtime = runtime or select_runtime()
        classes = len(self.contract.labels)
        single = FixedBatchInterpreter(self.runtime, model_bytes, self.model_path.name, num_threads)
        single.check(1, self.contract.sample_shape, classes)
        batched = None
        batched_entry = self.manifest.get("batched")  # absent from batch-1-only bundles
        if batched_entry:
            batched_path = model_dir / batched_entry["file"]
            batched = FixedBatchInterpreter(
                self.runtime,
                read_model_bytes(batched_path, batched_entry["sha256"]),
                batched_path.name,
                num_threads,
            )
            batched.check(int(batched_entry["batch_size"]), self.contract.sample_shape, classes)
        self.router = BatchRouter(single, batched, pad_fraction)
        self.batch_size = self.router.batch_size
        # The interpreters are not thread-safe: each run happens under this lock.
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

    def normalised(self, values: Any) -> np.ndarray:
        """Raw client values, checked and normalised: what the interpreters take."""
        batch = self.normalise(self.as_batch(values))
        # Finite raw values can overflow to infinity once scaled (3e38 x a scale > 1).
        if not np.isfinite(batch).all():
            raise InputError(
                "input overflows float32 once normalised by the bundle's preprocessing; "
                f"expected {self.contract.describe()} within the range the model was trained on"
            )
        return np.ascontiguousarray(batch, dtype=np.float32)

    def outputs(self, normalised: np.ndarray, route: str = "auto") -> np.ndarray:
        """The model's outputs (n, classes) for normalised samples, over `route`."""
        with self._lock:
            return self.router.run(normalised, route)

    def predict_proba(self, values: Any, route: str = "auto") -> np.ndarray:
        """The model's outputs, shape (n, classes), for raw (un-normalised) samples.

        `route` picks the interpreters (service/interpreter.py, BatchRouter): parity runs
        every sample through `single` and through `batched`.
        """
        return self.outputs(self.normalised(values), route)

    def predict(self, values: Any, top_k: int = 1) -> list[dict[str, Any]]:
        """For each sample: its label, that label's value and the top-k labels.

        The value is named `probability` for a distribution and `score` otherwise
        (independent sigmoid scores or logits); top-k is sorted by it either way.
        """
        return self.answers(self.predict_proba(values), top_k)

    def answers(self, outputs: np.ndarray, top_k: int = 1) -> list[dict[str, Any]]:
        """The answer for each row of outputs: its labels ranked by value, highest first."""
        top_k = max(1, min(top_k, len(self.contract.labels)))
        key, labels = self.contract.value_key, self.contract.labels
        positions = range(len(labels))
        answers = []
        # Stable sorts (ties keep label order). For a few labels, plain floats and Python's sort
        # cost a fraction of numpy's per-call overhead; for many, numpy sorts faster.
        many = len(labels) > FEW_LABELS
        rankings = np.argsort(-outputs, axis=1, kind="stable")[:, :top_k].tolist() if many else None
        for index, row in enumerate(outputs.tolist()):
            if many:
                ranked = rankings[index]
            else:
                ranked = sorted(positions, key=row.__getitem__, reverse=True)[:top_k]
            top = [{"label": labels[i], key: row[i]} for i in ranked]
            answers.append({"label": top[0]["label"], key: top[0][key], "top_k": top})
        return answers
