"""The user's Keras model: loaded with its custom objects, its per-sample shape read, its
outputs computed the way the user's own code computes them and their kind detected."""

import importlib
import importlib.util
import inspect
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.files import (
    KERAS_SUFFIXES,
    InputFileError,
    InputPaths,
    ModelShape,
    require_file,
)
from pipeline.inputs.keras2_h5 import keras3_copy

# How Keras names a class it cannot find in a saved config.
MISSING_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")
# How Keras names a layer argument it does not take.
UNKNOWN_ARGUMENTS = re.compile(r"Unrecognized keyword arguments passed to (\w+): (\{.*?\})")
# How far a distribution's rows may stray from summing to 1 (float32 softmax on many classes).
DISTRIBUTION_TOLERANCE = 1e-3


def import_custom_objects(module_name: str) -> dict[str, Any]:
    """The module's custom objects by name: its CUSTOM_OBJECTS dict if it has one, else every
    class and function it defines. Importing it also runs its register_keras_serializable."""
    try:
        if module_name.endswith(".py"):
            path = require_file(Path(module_name), "inputs.custom_objects")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InputFileError:
        raise
    except Exception as error:
        raise InputFileError(
            f"inputs.custom_objects {module_name} cannot be imported "
            f"({type(error).__name__}: {error}); give a .py file in your repository "
            "(path relative to it) or an importable module name"
        ) from None
    explicit = getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(explicit, dict):
        return dict(explicit)
    return {
        name: value
        for name, value in vars(module).items()
        if (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    }


def _load_error(path: Path, error: Exception, custom_objects: str | None) -> InputFileError:
    """The right fix for why Keras could not load the file, with Keras's cause kept whole."""
    cause = f"{type(error).__name__}: {' '.join(str(error).split())}"
    if "safe_mode" in str(error) and "Lambda" in str(error):
        return InputFileError(
            f"model {path} holds a Lambda layer, whose code Keras will not load by default; "
            "if you trust the file, set inputs.allow_unsafe_deserialization: true"
        )
    missing = MISSING_CLASS.search(str(error))
    if missing:
        where = (
            f"the module inputs.custom_objects ({custom_objects}) does not define it"
            if custom_objects
            else "set inputs.custom_objects to a Python module in your repository (a .py file "
            "in the inputs folder) that defines it, or registers it with "
            "@keras.saving.register_keras_serializable()"
        )
        return InputFileError(
            f"model {path} needs the custom class or function {missing.group(1)!r}: {where}. "
            f"Keras said: {cause}"
        )
    unknown = UNKNOWN_ARGUMENTS.search(str(error))
    if unknown:
        return InputFileError(
            f"model {path}: its {unknown.group(1)} layer was saved with arguments Keras 3 does "
            f"not take ({unknown.group(2)}), not among the Keras 2 arguments known to change no "
            "answer, which the loader drops (docs/bring-your-own-model.md lists them): rebuild "
            "the model with Keras 3, load its weights into it and save it with "
            f"model.save('model.keras'). Keras said: {cause}"
        )
    if "No model config found" in str(error):
        return InputFileError(
            f"model {path} holds only weights, no architecture: rebuild the model in Python "
            "with the code that built it, call model.load_weights('"
            f"{path.name}'), then model.save('model.keras') and point inputs.model at that. "
            f"Keras said: {cause}"
        )
    return InputFileError(
        f"model {path} is not a readable Keras model; if it was saved by an older Keras, load "
        "it there and save it again with model.save('model.keras'). "
        f"Keras said: {cause}"
    )


def model_shape(path: Path, model) -> ModelShape:
    """The fixed per-sample input shape and the number of outputs, or a clear refusal."""
    try:
        input_shape, output_shape = model.input_shape, model.output_shape
    except (AttributeError, ValueError):
        raise InputFileError(
            f"model {path} has no defined input shape; build it with keras.Input(shape=...) "
            "and save it again"
        ) from None
    if not isinstance(input_shape, tuple) or not all(
        isinstance(d, int | None) for d in input_shape
    ):
        raise InputFileError(
            f"model {path} takes several inputs {input_shape}; the pipeline serves a model "
            "with one input tensor"
        )
    if len(input_shape) < 2:
        raise InputFileError(
            f"model {path} takes input {input_shape}: no per-sample dimension; expected "
            "(batch, ...) with at least one fixed dimension after the batch"
        )
    dynamic = [index for index, size in enumerate(input_shape) if index and size is None]
    if dynamic:
        raise InputFileError(
            f"model {path} takes input {input_shape} whose dimension(s) {dynamic} are not "
            "fixed (None); TFLite needs one fixed sample shape: rebuild the model with "
            "keras.Input(shape=...) giving every size, e.g. the sequence length you pad to"
        )
    if not isinstance(output_shape, tuple) or len(output_shape) != 2 or output_shape[1] is None:
        raise InputFileError(
            f"model {path} answers {output_shape}; expected one output of shape (batch, classes)"
        )
    return ModelShape(tuple(int(d) for d in input_shape[1:]), int(output_shape[1]))


def load_keras_model(paths: InputPaths):
    """The Keras model the inputs name (.keras or legacy .h5) and its shape."""
    path = require_file(paths.model, "model")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise InputFileError(
            f"model {path} has suffix {path.suffix!r}; save it with model.save('model.keras') "
            f"(accepted: {', '.join(KERAS_SUFFIXES)})"
        )
    custom_objects = import_custom_objects(paths.custom_objects) if paths.custom_objects else {}
    import keras

    with tempfile.TemporaryDirectory(prefix="keras3-copy-") as scratch:
        # A Keras 2 .h5 loads from a copy without the arguments Keras 3 no longer takes.
        loadable = path
        if path.suffix.lower() in (".h5", ".hdf5"):
            loadable, dropped = keras3_copy(path, Path(scratch))
            if dropped:
                print(
                    f"model {path} holds Keras 2 arguments Keras 3 no longer takes; loaded from "
                    f"a copy without them (your file is unchanged): {'; '.join(dropped)}"
                )
        try:
            model = keras.saving.load_model(
                loadable,
                custom_objects=custom_objects,
                compile=False,
                safe_mode=not paths.allow_unsafe_deserialization,
            )
        except Exception as error:
            raise _load_error(path, error, paths.custom_objects) from None
    return model, model_shape(path, model)


def normalise_like_the_user(paths: InputPaths, samples: np.ndarray) -> np.ndarray:
    """Samples through the user's own normaliser object, fitted per feature or per sample."""
    if paths.normaliser is None:
        return samples
    import joblib

    normaliser = joblib.load(paths.normaliser)
    width = getattr(normaliser, "n_features_in_", samples.shape[-1])
    flat = samples.reshape(-1, width)
    return normaliser.transform(flat).reshape(samples.shape).astype(np.float32)


def keras_outputs(paths: InputPaths, model, samples: np.ndarray) -> np.ndarray:
    """Keras's answer for raw samples, preprocessed the way the user's own code did it."""
    normalised = normalise_like_the_user(paths, samples)
    return np.asarray(model.predict(normalised, batch_size=64, verbose=0), dtype=np.float64)


def detect_output_kind(outputs: np.ndarray) -> tuple[str, str]:
    """'probability' (rows are distributions), 'score' (each in [0, 1]) or 'logit', and why."""
    low, high = float(outputs.min()), float(outputs.max())
    sums = outputs.sum(axis=1)
    if low >= 0.0 and high <= 1.0 and np.abs(sums - 1.0).max() <= DISTRIBUTION_TOLERANCE:
        return "probability", "every row is in [0, 1] and sums to 1 (a distribution)"
    if low >= 0.0 and high <= 1.0:
        return "score", (
            f"every value is in [0, 1] but rows sum to {sums.min():.3g}..{sums.max():.3g} "
            "(independent scores, e.g. sigmoid)"
        )
    return "logit", f"values range {low:.3g}..{high:.3g}, outside [0, 1] (unnormalised logits)"
