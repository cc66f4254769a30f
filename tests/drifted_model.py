"""A candidate that drifts: the bundle's own network with noise added to its float32 weights.

    python tests/drifted_model.py SOURCE_BUNDLE DESTINATION_BUNDLE [--noise 0.5] [--seed 0]

The copy keeps the shapes, ops, labels and preprocessing of the source; only the weights move,
by `noise` times each weight tensor's own standard deviation, so it answers like a different
model of the same shape (what a broken conversion or a swapped file would serve). The manifest
names the new file's sha256, so the bundle loads as any other. Run as a script because the
flatbuffer schema comes with TensorFlow, which the tests keep out of their own process.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

# Weight tensors are large; shape and index constants (int32) and small biases are left alone.
MIN_WEIGHT_VALUES = 256


def perturb_weights(model_path: Path, noise: float, seed: int) -> int:
    """Add noise to every float32 weight buffer of the .tflite at `model_path`; how many."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(model_path))
    rng = np.random.default_rng(seed)
    weight_buffers = {
        tensor.buffer
        for graph in model.subgraphs
        for tensor in graph.tensors
        if tensor.type == schema.TensorType.FLOAT32
    }
    changed = 0
    for index in sorted(weight_buffers):
        data = model.buffers[index].data
        if data is None or data.size < 4 * MIN_WEIGHT_VALUES:
            continue
        weights = data.view(np.float32)
        weights += rng.normal(0.0, noise * float(weights.std()), weights.shape).astype(np.float32)
        changed += 1
    flatbuffer_utils.write_model(model, str(model_path))
    return changed


def drifted_bundle(source: Path, destination: Path, noise: float, seed: int) -> str:
    """Copy the bundle at `source` to `destination` with drifted weights; the new sha256."""
    import hashlib

    shutil.copytree(source, destination)
    manifest_path = destination / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    model_path = destination / manifest["model_file"]
    if not perturb_weights(model_path, noise, seed):
        raise SystemExit(f"{model_path} has no float32 weights to perturb")
    sha256 = hashlib.sha256(model_path.read_bytes()).hexdigest()
    manifest["sha256"] = sha256
    manifest["files"][manifest["model_file"]] = {
        "sha256": sha256,
        "bytes": model_path.stat().st_size,
    }
    batched = manifest.get("batched")
    if batched:  # the batched model drifts too: a bundle whose every model is another model
        batched_path = destination / batched["file"]
        perturb_weights(batched_path, noise, seed)
        batched["sha256"] = hashlib.sha256(batched_path.read_bytes()).hexdigest()
        manifest["files"][batched["file"]] = {
            "sha256": batched["sha256"],
            "bytes": batched_path.stat().st_size,
        }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return sha256


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(drifted_bundle(args.source, args.destination, args.noise, args.seed))
