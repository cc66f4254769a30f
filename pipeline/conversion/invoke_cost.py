"""The CPU one invoke() of a converted model costs: what a quota host pays per sample.

    python -m pipeline.conversion.invoke_cost MODEL.tflite COUNT [REPEATS]

prints the CPU milliseconds of one set_tensor/invoke/get_tensor, the least of REPEATS
averages over COUNT calls (the least: interference only ever adds). Run in its own process
so a model that crashes the interpreter takes only that process down.
"""

import sys
import time
from pathlib import Path

import numpy as np

WARM_UP_INVOKES = 20


def cpu_ms_per_invoke(model_path: Path, count: int, repeats: int = 1) -> float:
    """CPU ms of one invoke on one thread, least of `repeats` averages over `count` invokes."""
    from service.runtime import select_runtime

    interpreter = select_runtime().interpreter_class(
        model_content=Path(model_path).read_bytes(), num_threads=1
    )
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    sample = np.random.default_rng(0).normal(size=input_detail["shape"])
    sample = sample.astype(input_detail["dtype"])
    for _ in range(WARM_UP_INVOKES):
        interpreter.set_tensor(input_detail["index"], sample)
        interpreter.invoke()
    averages = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(count):
            interpreter.set_tensor(input_detail["index"], sample)
            interpreter.invoke()
            interpreter.get_tensor(output_index)
        averages.append((time.process_time() - started) * 1000 / count)
    return min(averages)


if __name__ == "__main__":
    model, count, *rest = sys.argv[1:]
    print(cpu_ms_per_invoke(Path(model), int(count), int(rest[0]) if rest else 1))
