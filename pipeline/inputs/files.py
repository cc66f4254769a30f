"""Load the files a user brings (normaliser, held-out set) and where they are, with errors
that name the file and the fix. The labels: inputs.labels; the model: inputs.keras_model."""

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace
from service.bundle import is_lfs_pointer
from service.errors import Refusal

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class InputFileError(Refusal):
    """A user-supplied file is missing or unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelShape:
    """What the model reads per sample (any fixed shape) and how many outputs it answers."""

    sample_shape: tuple[int, ...]
    classes: int

    @property
    def sample_size(self) -> int:
        return int(np.prod(self.sample_shape, dtype=np.int64))


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


def load_pickle(path: Path, what: str) -> Any:
    """The unpickled object, or an error naming the file and the fix."""
    import joblib

    try:
        return joblib.load(path)
    except Exception as error:
        raise InputFileError(
            f"{what} {path} cannot be unpickled ({type(error).__name__}: {error}); "
            "save it with joblib.dump from the same scikit-learn version"
        ) from None


def load_preprocessing(path: Path | None, shape: ModelShape) -> Preprocessing | None:
    """The normaliser as numbers, or None; refuses any scaler that is not per-feature affine.

    Fitted per feature (the sample's last axis) or on the whole flattened sample."""
    if path is None:
        return None
    normaliser = load_pickle(require_file(path, "normaliser"), "normaliser")
    if not hasattr(normaliser, "transform"):
        raise InputFileError(
            f"normaliser {path} is a {type(normaliser).__name__} with no transform(); "
            "save the fitted scikit-learn scaler"
        )
    features = shape.sample_shape[-1]
    width = getattr(normaliser, "n_features_in_", features)
    per_position = width == shape.sample_size
    if width != features and not per_position:
        raise InputFileError(
            f"normaliser {path} was fitted on {width} features but the model reads samples of "
            f"shape {shape.sample_shape}: {features} features on the last axis or "
            f"{shape.sample_size} flattened; use the normaliser the model was trained with"
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
            f"normaliser {path} failed on a probe of {width} features "
            f"({type(error).__name__}: {error}); save the fitted scaler the model was trained "
            "with (e.g. StandardScaler after fit), or set inputs.normaliser: none"
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
    if per_position and width != features:
        scale, offset = scale.reshape(shape.sample_shape), offset.reshape(shape.sample_shape)
    return Preprocessing(scale, offset, type(normaliser).__name__)


def negative_name(label: str) -> str:
    """How the held-out truth names the class a one-output model's score is not for."""
    return f"not {label}"


def _whole_floats_hint(targets: np.ndarray) -> str:
    """What to do when y holds class indices saved as floats (0.0, 1.0, ...), or nothing.

    Such y is not read as indices: a label list may itself hold "1.0", which y then names."""
    if targets.dtype.kind != "f" or not np.isfinite(targets).all():
        return ""
    if not (targets == np.round(targets)).all():
        return ""
    return (
        "; y holds whole numbers saved as floats: if they are class indices, save y as "
        "integer class indices (y.astype(int))"
    )


def _one_output_truth(path: Path, targets: np.ndarray, label: str) -> np.ndarray:
    """y of a one-output model as strings: 1 (or True, or its label) is its class, 0 (or
    False) is not."""
    if targets.dtype.kind in "biu":
        bad = sorted({int(t) for t in targets if t not in (0, 1)})
        if bad:
            raise InputFileError(
                f"held-out set {path} has y {bad[:5]} for a model with one output: give 1 "
                f"where the sample is {label!r} and 0 where it is not"
            )
        return np.where(targets.astype(bool), label, negative_name(label))
    strings = np.array([str(target) for target in targets])
    others = sorted(set(strings.tolist()) - {label})
    if len(others) > 1:
        raise InputFileError(
            f"held-out set {path} has y naming {others[:5]} beside {label!r}, the one label of a "
            f"model with one output: give 1 where the sample is {label!r} and 0 where it is not"
            + _whole_floats_hint(targets)
        )
    return np.where(strings == label, label, negative_name(label))


def _heldout_labels(path: Path, targets: np.ndarray, labels: list[str]) -> np.ndarray:
    """y as label strings: integer y is a class index into `labels`, anything else a label.
    For a one-output model (one label), y says whether each sample is of its class."""
    if len(labels) == 1:
        return _one_output_truth(path, targets, labels[0])
    if targets.dtype.kind in "iu":
        bad = sorted({int(t) for t in targets if not 0 <= t < len(labels)})
        if bad:
            raise InputFileError(
                f"held-out set {path} has integer y (class indices) outside 0..{len(labels) - 1}"
                f": {bad[:5]}; give indices into the label list or the label strings"
            )
        return np.array(labels)[targets]
    strings = np.array([str(label) for label in targets])
    unknown = sorted(set(strings.tolist()) - set(labels))
    if unknown:
        raise InputFileError(
            f"held-out set {path} has labels the label list does not know: {unknown[:5]}; "
            f"known labels are {labels}" + _whole_floats_hint(targets)
        )
    return strings


def load_heldout(path: Path, shape: ModelShape, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw held-out samples X (n, *sample_shape) and their labels y as strings."""
    path = require_file(path, "held-out set")
    how = "np.savez(path, X=raw_samples, y=labels or class indices)"
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise InputFileError(
                    f"held-out set {path} lacks {', '.join(sorted(missing))}; save it with {how}"
                )
            samples, targets = archive["X"], archive["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputFileError(
            f"held-out set {path} is not a readable .npz ({error}); save it with {how}"
        ) from None
    if samples.shape[1:] != shape.sample_shape or len(samples) == 0:
        expected = ", ".join(str(d) for d in shape.sample_shape)
        raise InputFileError(
            f"held-out set {path} has X of shape {samples.shape}; the model needs "
            f"(n, {expected}) with n >= 1"
        )
    if targets.shape != (len(samples),):
        raise InputFileError(
            f"held-out set {path} has {len(samples)} samples but y of shape {targets.shape}; "
            "give one label per sample"
        )
    if not np.issubdtype(samples.dtype, np.number) or not np.isfinite(samples).all():
        raise InputFileError(
            f"held-out set {path} holds NaN, infinity or non-numbers in X; clean the data"
        )
    return samples.astype(np.float32), _heldout_labels(path, targets, labels)


@dataclass(frozen=True)
class InputPaths:
    """Where the user's files are, from the `inputs` section of params.yaml."""

    model: Path
    labels: Path
    normaliser: Path | None
    heldout: Path
    folder: Path
    custom_objects: str | None = None
    allow_unsafe_deserialization: bool = False

    @classmethod
    def from_params(cls, inputs: InputsParams, workspace: Workspace) -> "InputPaths":
        """Resolve every path; each file must lie inside `inputs.folder`, which DVC watches."""
        folder = workspace.resolve(inputs.folder).resolve()
        custom = inputs.custom_objects
        if custom is not None and custom.endswith(".py"):
            custom = str(workspace.resolve(custom))
        paths = cls(
            model=workspace.resolve(inputs.model),
            labels=workspace.resolve(inputs.labels),
            normaliser=None if inputs.normaliser is None else workspace.resolve(inputs.normaliser),
            heldout=workspace.resolve(inputs.heldout),
            folder=folder,
            custom_objects=custom,
            allow_unsafe_deserialization=inputs.allow_unsafe_deserialization,
        )
        for key, path in paths.files().items():
            if not path.resolve().is_relative_to(folder):
                raise InputFileError(
                    f"inputs.{key} {path} is outside inputs.folder {folder}: DVC watches only "
                    "that folder, so a change to this file would not rerun the pipeline; move "
                    "it into the folder (python -m pipeline.init does) and update params.yaml"
                )
        return paths

    def files(self) -> dict[str, Path]:
        """Every file the user brings, by its key in `inputs`."""
        files = {"model": self.model, "labels": self.labels, "heldout": self.heldout}
        if self.normaliser is not None:
            files["normaliser"] = self.normaliser
        if self.custom_objects is not None and self.custom_objects.endswith(".py"):
            files["custom_objects"] = Path(self.custom_objects)
        return files
