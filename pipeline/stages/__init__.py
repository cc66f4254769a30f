"""The DVC stages, one module each: `python -m pipeline.stages.<name>` is what dvc.yaml runs."""
