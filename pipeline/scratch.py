"""Scratch workspaces: the current inputs and params with overrides, in a folder of their own."""

import yaml

from pipeline.params import load_params
from pipeline.paths import Workspace

# Every key of `inputs` that holds a path (label_encoder is another name for labels).
INPUT_PATH_KEYS = ("folder", "model", "labels", "label_encoder", "normaliser", "heldout")


def scratch_workspace(workspace: Workspace, name: str, **overrides: dict) -> Workspace:
    """build/<name>/ laid out like the repository, on the same input files (absolute paths)."""
    # Checked first, then edited as the text it is written back as.
    data = load_params(workspace).data
    inputs = data["inputs"]
    for key in INPUT_PATH_KEYS:
        if inputs.get(key) not in (None, "", "none"):
            inputs[key] = str(workspace.resolve(inputs[key]))
    if str(inputs.get("custom_objects", "")).endswith(".py"):
        inputs["custom_objects"] = str(workspace.resolve(inputs["custom_objects"]))
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    scratch = Workspace(workspace.build_dir / name)
    scratch.root.mkdir(parents=True, exist_ok=True)
    scratch.params_path.write_text(yaml.safe_dump(data, sort_keys=False))
    if workspace.render_yaml_path.exists():
        scratch.render_yaml_path.write_text(workspace.render_yaml_path.read_text())
    return scratch
