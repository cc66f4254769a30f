"""Read params.yaml: one section per stage plus `shared`."""

from pathlib import Path
from typing import Any

import yaml

from pipeline.paths import PARAMS_PATH


def load_params(params_path: Path = PARAMS_PATH) -> dict[str, Any]:
    """The whole params file as a dict."""
    with open(params_path, encoding="utf-8") as params_file:
        return yaml.safe_load(params_file)
