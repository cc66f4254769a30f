"""Stage `demo_model`: a seed-shaped Keras classifier trained on synthetic data, so the
product runs out of the box. It writes exactly what a user brings: `model.keras`, a joblib
LabelEncoder and StandardScaler, and a held-out `.npz` of raw samples with string labels."""

import os
import time

import joblib
import numpy as np

# TensorFlow logs its start-up chatter at INFO; keep stage output to what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.reports import write_json

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


def demo_model(workspace: Workspace) -> None:
    """Train the demo classifier and write it with its encoder, normaliser and held-out set."""
    params = load_params(workspace)
    seed = params["shared"]["seed"]
    settings = params["demo_model"]
    timesteps, features = settings["timesteps"], settings["features"]
    labels = DEMO_LABELS[: settings["classes"]]
    if len(labels) != settings["classes"]:
        raise SystemExit(f"demo_model.classes must be at most {len(DEMO_LABELS)}")

    import keras
    import tensorflow as tf
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(seed)
    total = settings["train_samples"] + settings["heldout_samples"]
    raw, class_ids = synthetic_sequences(rng, total, timesteps, features, len(labels))
    string_labels = np.array(labels)[class_ids]
    train = slice(0, settings["train_samples"])
    heldout = slice(settings["train_samples"], total)

    encoder = LabelEncoder().fit(string_labels)
    # Fitted per landmark feature over every frame, as the seed's normalizer was.
    normaliser = StandardScaler().fit(raw[train].reshape(-1, features))
    normalised = normaliser.transform(raw[train].reshape(-1, features)).reshape(raw[train].shape)

    model = build_classifier(timesteps, features, len(labels))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(
        normalised.astype(np.float32),
        encoder.transform(string_labels[train]),
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        verbose=2,
    )
    training_seconds = time.perf_counter() - started

    demo_dir = workspace.demo_dir
    demo_dir.mkdir(parents=True, exist_ok=True)
    model.save(demo_dir / "model.keras")
    joblib.dump(encoder, demo_dir / "label_encoder.joblib")
    joblib.dump(normaliser, demo_dir / "normaliser.joblib")
    np.savez_compressed(demo_dir / "heldout.npz", X=raw[heldout], y=string_labels[heldout])

    summary = {
        "parameters": int(model.count_params()),
        "train_samples": settings["train_samples"],
        "heldout_samples": settings["heldout_samples"],
        "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4),
        "training_seconds": round(training_seconds, 2),
    }
    write_json(workspace.report_path("demo_model"), summary)
    print(f"demo model: {summary}")


if __name__ == "__main__":
    demo_model(Workspace.from_env())
