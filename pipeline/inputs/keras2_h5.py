"""Keras 2 `.h5` models whose layer configs hold arguments Keras 3 no longer takes: Keras 3
refuses the whole file ("Unrecognized keyword arguments passed to LSTM: {'time_major': False}").
Each known one is dropped, in a copy of the file, where its value is what Keras 3 does anyway,
so the user's own file loads as it is; any other value is left for Keras to refuse."""

import json
import shutil
from pathlib import Path

# Dropped whatever its value: it never shapes an answer at inference.
ANY_VALUE = object()
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN")
SEPARABLE = ("SeparableConv1D", "SeparableConv2D")
GROUPED = (*SEPARABLE, "DepthwiseConv1D", "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose")
SPATIAL_DROPOUT = ("SpatialDropout1D", "SpatialDropout2D")
# (layer classes, argument, the value that means what Keras 3 does). Each was checked by saving
# models with tf_keras 2.21 (Keras 2) and loading them here: the same answers, to float32
# rounding.
# ConvLSTM layers are not listed: with time_major dropped they load but answer otherwise.
KERAS2_ARGUMENTS = (
    # Keras 3 reads (batch, time, ...) only, which is time_major=False.
    (RECURRENT, "time_major", False),
    # Keras 2 wrote its Conv base's `groups` (1 here) on these; Keras 3 has no such argument.
    (GROUPED, "groups", 1),
    # Keras 2's separable layers wrote their Conv base's unused kernel_* arguments; their
    # weights are depthwise_* and pointwise_*, which both Kerases read.
    (SEPARABLE, "kernel_initializer", ANY_VALUE),
    (SEPARABLE, "kernel_regularizer", ANY_VALUE),
    (SEPARABLE, "kernel_constraint", ANY_VALUE),
    # A dropout layer has no weights and does nothing at inference.
    (SPATIAL_DROPOUT, "trainable", ANY_VALUE),
    (SPATIAL_DROPOUT, "noise_shape", None),
)


def drop_keras2_arguments(node) -> list[str]:
    """Remove every known Keras 2 argument, holding its Keras 3 value, from each layer config
    in `node` (nested ones included); what was dropped, e.g. "LSTM 'lstm': time_major=False"."""
    dropped = []
    if isinstance(node, dict):
        config, class_name = node.get("config"), node.get("class_name")
        if isinstance(config, dict) and isinstance(class_name, str):
            for classes, argument, value in KERAS2_ARGUMENTS:
                if class_name in classes and argument in config:
                    held = config[argument]
                    if value is ANY_VALUE or (type(held) is type(value) and held == value):
                        del config[argument]
                        dropped.append(f"{class_name} {config.get('name')!r}: {argument}={held!r}")
        for child in node.values():
            dropped += drop_keras2_arguments(child)
    elif isinstance(node, list):
        for child in node:
            dropped += drop_keras2_arguments(child)
    return dropped


def keras3_copy(path: Path, scratch_dir: Path) -> tuple[Path, list[str]]:
    """A copy of the .h5 at `path` in `scratch_dir` without the known Keras 2 arguments, and
    what was dropped; `path` itself (and nothing dropped) when it holds none, or no readable
    model config, which Keras then names when it loads it."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except OSError:
        return path, []
    if raw is None:
        return path, []
    try:
        config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except ValueError:
        return path, []
    dropped = drop_keras2_arguments(config)
    if not dropped:
        return path, []
    copy = scratch_dir / path.name
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(config)
    return copy, dropped
