"""Load the files a user brings (model, label encoder, normaliser, held-out set) with errors
that name the file and the fix. Shared by the convert worker and the parity stage."""

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.paths import Workspace
from service.bundle import is_lfs_pointer

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class InputFileError(Exception):
    """A user-supplied file is missing or unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelShape:
    """What the model reads per sample and how many classes it answers."""

    timesteps: int
    features: int
    classes: int


@dataclass(frozen=True)
class Preprocessing:
    """A per-feature affine normaliser as plain numbers: normalised = raw * scale + offset."""

    scale: np.ndarray
    offset: np.ndarray
    source: str

    def as_manifest(self) -> dict[str, Any]:
        return {
            "kind": "affine",
            "formula": "normalised = raw * scale + offset",
            "source": self.source,
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
        }

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return raw * self.scale + self.offset


def require_file(path: Path, what: str) -> Path:
    """The path, if it is a real file; else an error naming it and the fix."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            f"{what} {path} does not exist; fix the path under `inputs:` in params.yaml"
        )
    if is_lfs_pointer(path):
        raise InputFileError(
            f"{what} {path} is a Git LFS pointer, not the file itself; run `git lfs pull`"
        )
    return path


def load_keras_model(path: Path, allow_unsafe_deserialization: bool = False):
    """The Keras model at `path` (.keras or legacy .h5) and its per-sample shape."""
    path = require_file(path, "model")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise InputFileError(
            f"model {path} has suffix {path.suffix!r}; save it with model.save('model.keras') "
            f"(accepted: {', '.join(KERAS_SUFFIXES)})"
        )
    import keras

    try:
        model = keras.saving.load_model(
            path, compile=False, safe_mode=not allow_unsafe_deserialization
        )
    except Exception as error:
        if "safe_mode" in str(error):
            raise InputFileError(
                f"model {path} holds a Lambda layer, whose code Keras will not load by default; "
                "if you trust the file, set inputs.allow_unsafe_deserialization: true"
            ) from None
        raise InputFileError(
            f"model {path} is not a readable Keras model ({type(error).__name__}: "
            f"{str(error)[:200]}); re-save it with model.save('model.keras')"
        ) from None
    try:
        input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError):
        raise InputFileError(
            f"model {path} has no defined input shape; build it with keras.Input(shape=...) "
            "and save it again"
        ) from None
    if len(input_shape) != 3 or None in input_shape[1:]:
        raise InputFileError(
            f"model {path} takes input {input_shape}; expected (batch, timesteps, features) "
            "with fixed timesteps and features"
        )
    if len(output_shape) != 2 or output_shape[1] is None:
        raise InputFileError(
            f"model {path} answers {output_shape}; expected (batch, classes) probabilities"
        )
    return model, ModelShape(int(input_shape[1]), int(input_shape[2]), int(output_shape[1]))


def _load_joblib(path: Path, what: str) -> Any:
    import joblib

    path = require_file(path, what)
    try:
        return joblib.load(path)
    except Exception as error:
        raise InputFileError(
            f"{what} {path} cannot be unpickled ({type(error).__name__}: {str(error)[:200]}); "
            "save it with joblib.dump from the same scikit-learn version"
        ) from None


def load_labels(path: Path, shape: ModelShape) -> list[str]:
    """The label encoder's classes, in the order of the model's outputs."""
    encoder = _load_joblib(path, "label encoder")
    classes = getattr(encoder, "classes_", None)
    if classes is None:
        raise InputFileError(
            f"label encoder {path} is a {type(encoder).__name__} with no classes_; "
            "save the fitted sklearn LabelEncoder"
        )
    if len(classes) != shape.classes:
        raise InputFileError(
            f"label encoder {path} knows {len(classes)} labels but the model outputs "
            f"{shape.classes} classes; use the encoder the model was trained with"
        )
    return [str(label) for label in classes]


def load_preprocessing(path: Path | None, shape: ModelShape) -> Preprocessing | None:
    """The normaliser as numbers, or None; refuses any scaler that is not per-feature affine."""
    if path is None:
        return None
    normaliser = _load_joblib(path, "normaliser")
    if not hasattr(normaliser, "transform"):
        raise InputFileError(
            f"normaliser {path} is a {type(normaliser).__name__} with no transform(); "
            "save the fitted scikit-learn scaler"
        )
    width = getattr(normaliser, "n_features_in_", shape.features)
    per_position = width == shape.timesteps * shape.features
    if width != shape.features and not per_position:
        raise InputFileError(
            f"normaliser {path} was fitted on {width} features but the model reads "
            f"{shape.features} features per frame ({shape.timesteps} frames); "
            "use the normaliser the model was trained with"
        )
    # Probe the transform: zeros give the offset, ones give scale + offset, and random rows
    # prove that each output depends on its own feature only and linearly.
    try:
        offset = np.asarray(normaliser.transform(np.zeros((1, width))), dtype=np.float64)[0]
        scale = np.asarray(normaliser.transform(np.ones((1, width))), dtype=np.float64)[0] - offset
        probe = np.random.default_rng(0).normal(0.0, 10.0, size=(16, width))
        transformed = np.asarray(normaliser.transform(probe), dtype=np.float64)
    except Exception as error:
        raise InputFileError(
            f"normaliser {path} failed on a probe ({type(error).__name__}: {error})"
        ) from None
    expected = probe * scale + offset
    tolerance = 1e-6 * (1.0 + np.abs(expected))
    if (
        transformed.shape != expected.shape
        or not (np.abs(transformed - expected) <= tolerance).all()
    ):
        raise InputFileError(
            f"normaliser {path} ({type(normaliser).__name__}) is not a per-feature affine "
            "transform, so it cannot be carried as numbers; use StandardScaler, MinMaxScaler, "
            "MaxAbsScaler or RobustScaler, or fold it into the model and set "
            "inputs.normaliser: none"
        )
    if per_position:
        scale = scale.reshape(shape.timesteps, shape.features)
        offset = offset.reshape(shape.timesteps, shape.features)
    return Preprocessing(scale, offset, type(normaliser).__name__)


def load_heldout(path: Path, shape: ModelShape, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw held-out samples X (n, timesteps, features) and their string labels y."""
    path = require_file(path, "held-out set")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise InputFileError(
                    f"held-out set {path} lacks {', '.join(sorted(missing))}; save it with "
                    "np.savez(path, X=raw_samples, y=string_labels)"
                )
            samples, targets = archive["X"], archive["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputFileError(
            f"held-out set {path} is not a readable .npz ({error}); save it with "
            "np.savez(path, X=raw_samples, y=string_labels)"
        ) from None
    expected = (shape.timesteps, shape.features)
    if samples.ndim != 3 or samples.shape[1:] != expected or len(samples) == 0:
        raise InputFileError(
            f"held-out set {path} has X of shape {samples.shape}; the model needs "
            f"(n, {expected[0]}, {expected[1]}) with n >= 1"
        )
    if targets.shape != (len(samples),):
        raise InputFileError(
            f"held-out set {path} has {len(samples)} samples but y of shape {targets.shape}; "
            "give one label per sample"
        )
    unknown = sorted({str(label) for label in targets} - set(labels))
    if unknown:
        raise InputFileError(
            f"held-out set {path} has labels the encoder does not know: {unknown[:5]}; "
            f"known labels are {labels}"
        )
    if not np.isfinite(samples).all():
        raise InputFileError(f"held-out set {path} holds NaN or infinity in X; clean the data")
    return samples.astype(np.float32), np.array([str(label) for label in targets])


@dataclass(frozen=True)
class InputPaths:
    """Where the user's files are, from the `inputs` section of params.yaml."""

    model: Path
    label_encoder: Path
    normaliser: Path | None
    heldout: Path
    allow_unsafe_deserialization: bool = False

    @classmethod
    def from_params(cls, inputs: dict[str, Any], workspace: Workspace) -> "InputPaths":
        normaliser = inputs.get("normaliser")
        return cls(
            model=workspace.resolve(inputs["model"]),
            label_encoder=workspace.resolve(inputs["label_encoder"]),
            normaliser=None if normaliser in (None, "", "none") else workspace.resolve(normaliser),
            heldout=workspace.resolve(inputs["heldout"]),
            allow_unsafe_deserialization=bool(inputs.get("allow_unsafe_deserialization", False)),
        )
