"""Read params.yaml: one section per stage plus `shared`."""

from typing import Any

import yaml

from pipeline.paths import Workspace


def load_params(workspace: Workspace) -> dict[str, Any]:
    """The workspace's whole params file as a dict."""
    with open(workspace.params_path, encoding="utf-8") as params_file:
        return yaml.safe_load(params_file)
