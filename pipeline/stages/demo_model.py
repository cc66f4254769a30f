"""Stage `demo_model` (demo/dvc.yaml): a seed-shaped Keras classifier trained on synthetic
data, so the product runs out of the box. It writes exactly what a user brings, to data/demo/:
`model.keras`, `labels.txt` (in output order, not sorted), a joblib StandardScaler, and a
held-out `.npz` of raw samples with string labels.

Every byte it writes is the same on every run on one kind of CPU: training is seeded,
deterministic and single-threaded, and the save dates Keras and zip files carry are pinned. So
a fresh clone's `make demo` on the machine kind that committed the verdicts rebuilds the very
candidate they name; a CPU of another make sums floats in another order and trains other bits
(docs/pipeline.md, "The demo model")."""

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np

# TensorFlow logs its start-up chatter at INFO; keep stage output to what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's kernels pick their float round-off by the CPU they find, so they stay off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.verdicts import write_json
from service.errors import Refusal

# Ten sign-language words, as in the seed's classifier.
DEMO_LABELS = (
    "hola",
    "gracias",
    "por_favor",
    "si",
    "no",
    "ayuda",
    "agua",
    "comer",
    "casa",
    "adios",
)


def synthetic_sequences(
    rng: np.random.Generator, count: int, timesteps: int, features: int, class_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Raw landmark-like sequences whose class is carried by a temporal pattern.

    Each class moves its own block of features along a sine of its own frequency; every
    feature also has its own offset and spread, so a normaliser is genuinely needed.
    """
    class_ids = rng.integers(0, class_count, size=count)
    time_axis = np.linspace(0.0, 1.0, timesteps, dtype=np.float32)
    feature_offset = rng.uniform(-50.0, 50.0, size=features).astype(np.float32)
    feature_spread = rng.uniform(0.5, 20.0, size=features).astype(np.float32)
    noise = rng.normal(0.0, 1.0, size=(count, timesteps, features)).astype(np.float32)
    block = max(1, features // class_count)
    for class_id in range(class_count):
        rows = class_ids == class_id
        columns = slice(class_id * block, (class_id + 1) * block)
        wave = np.sin(2 * np.pi * (class_id + 1) * time_axis)[:, None]
        noise[rows, :, columns] += 0.8 * wave
    return noise * feature_spread + feature_offset, class_ids


def build_classifier(timesteps: int, features: int, class_count: int):
    """The seed's architecture: LSTM(128, seq) -> Dropout -> LSTM(64) -> Dense(64) -> softmax."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(timesteps, features)),
            keras.layers.LSTM(128, return_sequences=True),
            keras.layers.Dropout(0.2),
            keras.layers.LSTM(64),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(class_count, activation="softmax"),
        ]
    )


# The earliest date a zip entry can carry: written instead of the clock.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber_shared_objects(config: Any, numbers: dict[int, int]) -> Any:
    """Keras's shared_object_id is a Python id(), new each run: number them in order instead
    (the same id gets the same number, so shared objects stay shared on load)."""
    if isinstance(config, dict):
        return {
            key: numbers.setdefault(value, len(numbers) + 1)
            if key == "shared_object_id"
            else _renumber_shared_objects(value, numbers)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_objects(value, numbers) for value in config]
    return config


def make_keras_file_reproducible(path: Path) -> None:
    """Rewrite a .keras zip without what changes per save: entry dates, Keras's
    `date_saved`, and the memory addresses Keras writes as shared_object_id."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            target.writestr(zipfile.ZipInfo(info.filename, ZIP_EPOCH), data, info.compress_type)
    path.write_bytes(buffer.getvalue())


def save_npz_reproducibly(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed, but with fixed entry dates (numpy stamps the clock)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", ZIP_EPOCH), "w") as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def demo_model(workspace: Workspace) -> None:
    """Train the demo classifier and write it with its labels, normaliser and held-out set."""
    try:
        params = load_params(workspace)
    except Refusal as refusal:
        raise SystemExit(f"demo_model failed: {refusal}") from None
    seed = params.shared.seed
    settings = params.demo_model
    timesteps, features = settings.timesteps, settings.features
    labels = DEMO_LABELS[: settings.classes]
    if len(labels) != settings.classes:
        raise SystemExit(f"demo_model.classes must be at most {len(DEMO_LABELS)}")

    import keras
    import tensorflow as tf
    from sklearn.preprocessing import StandardScaler

    # Same seed, same ops, one thread: the same weights on every run.
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(seed)
    total = settings.train_samples + settings.heldout_samples
    raw, class_ids = synthetic_sequences(rng, total, timesteps, features, len(labels))
    string_labels = np.array(labels)[class_ids]
    train = slice(0, settings.train_samples)
    heldout = slice(settings.train_samples, total)

    # Fitted per landmark feature over every frame, as the seed's normalizer was.
    normaliser = StandardScaler().fit(raw[train].reshape(-1, features))
    normalised = normaliser.transform(raw[train].reshape(-1, features)).reshape(raw[train].shape)

    model = build_classifier(timesteps, features, len(labels))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(
        normalised.astype(np.float32),
        class_ids[train],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        shuffle=True,
        verbose=2,
    )
    training_seconds = time.perf_counter() - started

    demo_dir = workspace.demo_dir
    demo_dir.mkdir(parents=True, exist_ok=True)
    model.save(demo_dir / "model.keras")
    make_keras_file_reproducible(demo_dir / "model.keras")
    # The labels in the order of the model's outputs, which is not alphabetical.
    (demo_dir / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    joblib.dump(normaliser, demo_dir / "normaliser.joblib")
    save_npz_reproducibly(demo_dir / "heldout.npz", X=raw[heldout], y=string_labels[heldout])

    # In git (a DVC metric): only figures that are the same on every run, no timings.
    summary = {
        "parameters": int(model.count_params()),
        "train_samples": settings.train_samples,
        "heldout_samples": settings.heldout_samples,
        "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4),
    }
    write_json(workspace.report_path("demo_model"), summary)
    print(f"demo model: {summary}, trained in {training_seconds:.1f} s")


if __name__ == "__main__":
    demo_model(Workspace.from_env())
