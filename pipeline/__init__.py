"""DVC stages and release tooling: from a Keras model to a verified, promoted TFLite bundle."""
