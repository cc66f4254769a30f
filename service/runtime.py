"""Pick the lite runtime: ai-edge-litert by default, tflite-runtime where only it is installed."""

import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from typing import Any

from service.bundle import BundleError

# (distribution name, module holding Interpreter), in order of preference.
RUNTIMES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
)
RUNTIME_ENV = "LITE_RUNTIME"


@dataclass(frozen=True)
class LiteRuntime:
    """One installed lite runtime: its name, version and Interpreter class."""

    name: str
    version: str
    interpreter_class: Any


def select_runtime(preferred: str | None = None) -> LiteRuntime:
    """The runtime named by `preferred` (or $LITE_RUNTIME), else the first one installed."""
    preferred = preferred or os.environ.get(RUNTIME_ENV) or None
    known = [name for name, _ in RUNTIMES]
    if preferred and preferred not in known:
        raise BundleError(f"{RUNTIME_ENV}={preferred!r} is unknown; use one of {', '.join(known)}")
    failures = []
    for name, module_name in RUNTIMES:
        if preferred and name != preferred:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            failures.append(f"{name}: {error}")
            continue
        return LiteRuntime(name, importlib.metadata.version(name), module.Interpreter)
    raise BundleError(
        "no lite runtime could be imported (" + "; ".join(failures) + "); "
        "install ai-edge-litert (or tflite-runtime with numpy<2 on Python <= 3.11)"
    )
