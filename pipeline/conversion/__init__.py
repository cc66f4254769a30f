"""Keras to TFLite conversion, run in a worker process the convert stage isolates (a converter
call can kill its process), and the side-by-side comparison of quantization modes."""
