"""Versions of the tools that shaped an artifact, recorded in manifests and reports."""

import importlib.metadata
import platform

TRACKED_DISTRIBUTIONS = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "numpy",
    "scikit-learn",
)


def tool_versions() -> dict[str, str]:
    """Python and every tracked distribution that is installed, by name."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
