"""CPU per sample of the model converted at each fixed batch size: how convert.batch_size is chosen.

`python -m benchmarks.batch_sweep [N ...]` converts the inputs' Keras model (params.yaml's
`inputs`) at batch 1 and at each N (default 4 8 16), runs each on the lite runtime with one
thread, and takes the least CPU per sample (`time.process_time`) of a few rounds: the least,
because other work on a shared machine only ever adds to it. Writes reports/batch_sweep.json.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.paths import REPO_ROOT, Workspace

ROUNDS = 5
SAMPLES_PER_ROUND = 128


def cpu_ms_per_sample(model_bytes: bytes, batch_size: int) -> float:
    """Least CPU ms per sample over ROUNDS rounds of SAMPLES_PER_ROUND samples."""
    from service.runtime import select_runtime

    interpreter = select_runtime().interpreter_class(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    batch = np.random.default_rng(0).normal(size=input_detail["shape"]).astype(np.float32)
    invokes = max(1, SAMPLES_PER_ROUND // batch_size)
    rounds = []
    for _ in range(ROUNDS + 1):
        started = time.process_time()
        for _ in range(invokes):
            interpreter.set_tensor(input_detail["index"], batch)
            interpreter.invoke()
            interpreter.get_tensor(output_index)
        rounds.append((time.process_time() - started) * 1000 / (invokes * batch_size))
    return round(min(rounds[1:]), 4)  # the first round warms caches


def batch_sweep(workspace: Workspace, batch_sizes: list[int]) -> dict:
    """CPU ms per sample at batch 1 and each of `batch_sizes`, and each against batch 1."""
    from pipeline.conversion.worker import convert_at_batch
    from pipeline.inputs.files import InputPaths
    from pipeline.inputs.keras_model import load_keras_model
    from pipeline.params import load_params

    params = load_params(workspace)
    paths = InputPaths.from_params(params.inputs, workspace)
    model, shape = load_keras_model(paths)
    representative = np.zeros((1, *shape.sample_shape), np.float32)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="batch-sweep-") as scratch:
        for batch_size in [1, *batch_sizes]:
            model_bytes, _ = convert_at_batch(
                model, shape.sample_shape, batch_size, "none", representative, scratch
            )
            figures[batch_size] = cpu_ms_per_sample(model_bytes, batch_size)
    single = figures[1]
    return {
        "model": paths.model.name,
        "rounds": ROUNDS,
        "cpu_ms_per_sample": {str(size): ms for size, ms in figures.items()},
        "vs_batch_1": {str(size): round(ms / single, 3) for size, ms in figures.items()},
    }


if __name__ == "__main__":
    sizes = [int(arg) for arg in sys.argv[1:]] or [4, 8, 16]
    result = batch_sweep(Workspace.from_env(), sizes)
    out_path = Path(REPO_ROOT / "reports" / "batch_sweep.json")
    out_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
