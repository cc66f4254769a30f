"""Scratch workspaces: the current inputs and params with overrides, in a folder of their own."""

import yaml

from pipeline.params import load_params
from pipeline.paths import Workspace

INPUT_FILE_KEYS = ("model", "label_encoder", "normaliser", "heldout")


def scratch_workspace(workspace: Workspace, name: str, **overrides: dict) -> Workspace:
    """build/<name>/ laid out like the repository, on the same input files (absolute paths)."""
    params = load_params(workspace)
    inputs = dict(params["inputs"])
    for key in INPUT_FILE_KEYS:
        if inputs.get(key) not in (None, "", "none"):
            inputs[key] = str(workspace.resolve(inputs[key]))
    params["inputs"] = inputs
    for section, values in overrides.items():
        params[section] = {**params.get(section, {}), **values}
    scratch = Workspace(workspace.build_dir / name)
    scratch.root.mkdir(parents=True, exist_ok=True)
    scratch.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    if workspace.render_yaml_path.exists():
        scratch.render_yaml_path.write_text(workspace.render_yaml_path.read_text())
    return scratch
