"""A user's own files (Keras model, labels, normaliser, held-out set) as the
pipeline takes them in, and a small classifier trained for real to fill them."""

from pathlib import Path

from pipeline.inputs.files import ModelShape
from pipeline.params.reading import read_section
from pipeline.params.sections import InputsParams

# The model the input-file tests judge a user's files against: 6 steps of 4 features, 3 classes.
SHAPE = ModelShape(sample_shape=(6, 4), classes=3)


def inputs_params(inputs: dict) -> InputsParams:
    """params.yaml's `inputs` section from its keys, as the stages read it."""
    return read_section(InputsParams, inputs, "inputs")


def write_labels(root: Path, labels: list[str], how: str) -> Path:
    """The labels in output order as a user may keep them: txt, json, or a LabelEncoder."""
    import json

    import joblib
    from sklearn.preprocessing import LabelEncoder

    if how == "txt":
        path = root / "labels.txt"
        path.write_text("\n".join(labels) + "\n")
    elif how == "json":
        path = root / "labels.json"
        path.write_text(json.dumps(labels))
    else:
        path = root / "encoder.joblib"
        joblib.dump(LabelEncoder().fit(labels), path)
    return path


def write_user_files(
    root: Path,
    model,
    *,
    normaliser: str | None = "standard",
    samples: int = 24,
    model_name: str = "model.keras",
    labels: list[str] | None = None,
    labels_as: str = "encoder",
    integer_y: bool = False,
    heldout_x=None,
    heldout_y=None,
) -> dict[str, str]:
    """Write a user's files for `model` (random weights are fine) under `root` and return
    `inputs` for params.yaml. Samples take the model's own input shape; labels default to
    sorted names in a LabelEncoder; the normaliser is fitted per feature (last axis)."""
    import joblib
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    root.mkdir(parents=True, exist_ok=True)
    sample_shape = tuple(model.input_shape[1:])
    classes = model.output_shape[-1]
    rng = np.random.default_rng(3)
    raw = rng.normal(5.0, 3.0, size=(samples, *sample_shape)).astype(np.float32)
    if heldout_x is not None:
        raw = np.asarray(heldout_x, dtype=np.float32)
    labels = labels or [f"class_{index:02d}" for index in range(classes)]
    model.save(root / model_name)
    inputs = {
        "folder": str(root),
        "model": str(root / model_name),
        "labels": str(write_labels(root, labels, labels_as)),
        "normaliser": "none",
        "heldout": str(root / "heldout.npz"),
    }
    if normaliser == "standard":
        scaler = StandardScaler().fit(raw.reshape(-1, sample_shape[-1]))
        joblib.dump(scaler, root / "scaler.joblib")
        inputs["normaliser"] = str(root / "scaler.joblib")
    indices = rng.integers(0, classes, len(raw)) if heldout_y is None else np.asarray(heldout_y)
    y = indices if integer_y or heldout_y is not None else np.array(labels)[indices]
    np.savez(root / "heldout.npz", X=raw, y=y)
    return inputs


def class_signal_samples(count: int, classes: int, shift: float, seed: int):
    """Flat samples (2 features per class) whose class raises its own two features by `shift`
    over unit noise, and their class ids: `shift` sets how well any model can do."""
    import numpy as np

    rng = np.random.default_rng(seed)
    class_ids = rng.integers(0, classes, count)
    samples = rng.normal(0.0, 1.0, size=(count, 2 * classes)).astype(np.float32)
    for class_id in range(classes):
        samples[class_ids == class_id, 2 * class_id : 2 * class_id + 2] += shift
    return samples, class_ids


def trained_dense_classifier(classes: int, shift: float):
    """A one-layer softmax classifier trained (about 2 s) on class_signal_samples: a shift of
    2.5 gives about 0.9 held-out accuracy on 12 classes, 0.6 about 0.3 on 6."""
    import keras

    keras.utils.set_random_seed(11)
    samples, class_ids = class_signal_samples(50 * classes, classes, shift, seed=0)
    model = keras.Sequential(
        [keras.Input((2 * classes,)), keras.layers.Dense(classes, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(samples, class_ids, epochs=10, batch_size=32, verbose=0)
    return model


def save_as_keras2_h5(model, path: Path, arguments: dict[str, dict]) -> Path:
    """`model` saved to a legacy .h5 as Keras 2 wrote it: Keras 3 saves it, then each layer
    config of a class named in `arguments` gets the arguments Keras 2 wrote beside its own
    (e.g. {"LSTM": {"time_major": False}}), edited into the model_config attribute."""
    import json

    import h5py

    model.save(path)

    def add(node) -> None:
        if isinstance(node, dict):
            if node.get("class_name") in arguments and isinstance(node.get("config"), dict):
                node["config"].update(arguments[node["class_name"]])
            for child in node.values():
                add(child)
        elif isinstance(node, list):
            for child in node:
                add(child)

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        add(config)
        h5.attrs["model_config"] = json.dumps(config)
    return path
