"""One lite interpreter of a fixed batch size, and how samples are routed over batch 1 and N.

The converter exports each batch size as its own model (resizing a batch-1 model's input
fails in XNNPack), so a bundle holds a batch-1 model for a lone sample and a batch-N one for
samples that arrive together. A batch-N invoke costs about 0.7x N batch-1 invokes on the demo
(benchmarks/batch_sweep.py), so a short group is padded to N only when it holds enough samples.
"""

import math
from typing import Any

import numpy as np

from service.bundle import BundleError


class FixedBatchInterpreter:
    """An interpreter whose input has a fixed batch size; not thread-safe: callers serialise."""

    def __init__(self, runtime: Any, model_bytes: bytes, file_name: str, num_threads: int) -> None:
        try:
            self._interpreter = runtime.interpreter_class(
                model_content=model_bytes, num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BundleError(
                f"{file_name} cannot be loaded by {runtime.name} {runtime.version}: "
                f"{str(error).splitlines()[0][:200]}"
            ) from None
        self._model_bytes = model_bytes  # the interpreter reads from this buffer: keep it alive
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.file_name = file_name
        self.input_shape = tuple(int(d) for d in self._input["shape"])
        self.output_width = int(self._output["shape"][-1])
        self.batch_size = self.input_shape[0]
        # The first invoke prepares the delegate's kernels (XNNPack packs the weights): at 0.1
        # CPU that takes seconds, so it happens here, while the worker starts, and never
        # inside a request that health checks would wait behind.
        zeros = np.zeros(self.input_shape, self._input["dtype"])
        self._interpreter.set_tensor(self._input["index"], zeros)
        self._interpreter.invoke()

    def check(self, batch_size: int, sample_shape: tuple[int, ...], classes: int) -> None:
        """BundleError unless the model takes (batch_size, *sample_shape) and has `classes`."""
        expected = (batch_size, *sample_shape)
        if self.input_shape != expected:
            raise BundleError(
                f"{self.file_name} takes input {self.input_shape} but the manifest promises "
                f"{expected}; rebuild the bundle"
            )
        if self.output_width != classes:
            raise BundleError(
                f"{self.file_name} has {self.output_width} outputs but the manifest lists "
                f"{classes} labels; rebuild the bundle"
            )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs (batch_size, classes) for a normalised float32 batch of exactly batch_size."""
        self._interpreter.set_tensor(self._input["index"], self._quantize(batch))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"]))

    def _quantize(self, batch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return batch
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, output: np.ndarray) -> np.ndarray:
        if output.dtype == np.float32:
            return output
        scale, zero_point = self._output["quantization"]
        return (output.astype(np.float32) - zero_point) * scale


class BatchRouter:
    """Runs any number of samples over a batch-1 interpreter and an optional batch-N one.

    Routes: `auto` (full groups of N batched; a short rest padded when it holds at least
    `pad_from` samples, else one at a time), `single` (every sample alone) and `batched`
    (every sample in a batch-N invoke, the last group padded): parity judges both models.
    """

    ROUTES = ("auto", "single", "batched")

    def __init__(
        self, single: FixedBatchInterpreter, batched: FixedBatchInterpreter | None, pad_fraction
    ) -> None:
        self.single, self.batched = single, batched
        self.batch_size = batched.batch_size if batched else 1
        # Padding pays once the batched invoke costs less than the samples run alone.
        self.pad_from = max(1, math.ceil(pad_fraction * self.batch_size))
        self._padded = np.zeros(batched.input_shape, np.float32) if batched is not None else None

    def run(self, samples: np.ndarray, route: str = "auto") -> np.ndarray:
        """Outputs (n, classes) for n normalised float32 samples, in their order."""
        if route not in self.ROUTES:
            raise ValueError(f"route {route!r} is not one of {self.ROUTES}")
        count, size = len(samples), self.batch_size
        outputs = np.empty((count, self.single.output_width), np.float32)
        done = 0
        if self.batched is not None and route != "single":
            while count - done >= size:
                outputs[done : done + size] = self.batched.run(samples[done : done + size])
                done += size
            rest = count - done
            if rest and (route == "batched" or rest >= self.pad_from):
                self._padded[:rest] = samples[done:]
                self._padded[rest:] = 0.0
                outputs[done:] = self.batched.run(self._padded)[:rest]
                done = count
        for row in range(done, count):
            outputs[row] = self.single.run(samples[row : row + 1])[0]
        return outputs
