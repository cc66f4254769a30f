"""Keras to TFLite conversion in a worker process, and quantization modes side by side.

The convert stage isolates the converter in its own process (a converter call can kill its
process); `make quantization` compares every mode on the current inputs."""
