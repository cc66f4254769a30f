"""Workspaces laid out like the repository, for the real stages to run on."""

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.verdicts import read_json


def run_stage(
    module: str, workspace: Workspace, check: bool = True, arguments: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """Run `python -m <module> [arguments]` on a workspace, as `dvc repro` would."""
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        check=check,
    )


def make_workspace(root: Path, **overrides: dict) -> Workspace:
    """A folder laid out like the repository, with params.yaml from the repo plus overrides."""
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    # Small and quick: the same shapes as the real demo, fewer samples and epochs.
    params["demo_model"].update(train_samples=300, heldout_samples=60, epochs=3)
    # The optional accuracy floor, exercised: that smaller demo is right about half the time
    # (chance is 0.1).
    params["parity"]["min_accuracy"] = 0.3
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    inputs = overrides.get("inputs", {})
    if inputs and "folder" not in inputs:
        # Files named by absolute paths: the folder that holds them all is what DVC would watch.
        files = [inputs.get(key) for key in ("model", "labels", "label_encoder", "heldout")]
        params["inputs"]["folder"] = os.path.commonpath([str(Path(f).parent) for f in files if f])
    if "label_encoder" in inputs and "labels" not in inputs:
        params["inputs"].pop("labels", None)  # label_encoder names the labels instead
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The gate starts the service with render.yaml's own start command.
    render_yaml = REPO_ROOT / "render.yaml"
    if render_yaml.exists():
        shutil.copy(render_yaml, root / "render.yaml")
    return Workspace(root)


DEMO_INPUT_FILES = {
    "model": "model.keras",
    "labels": "labels.txt",
    "normaliser": "normaliser.joblib",
    "heldout": "heldout.npz",
}


def swap_model(bundle_dir: Path, drifted_dir: Path) -> str:
    """Put the drifted model into the bundle at `bundle_dir`, its manifest naming it; sha256."""
    import json

    shutil.copy(drifted_dir / "model.tflite", bundle_dir / "model.tflite")
    drifted = json.loads((drifted_dir / "manifest.json").read_text())
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = drifted["sha256"]
    manifest["files"]["model.tflite"] = drifted["files"]["model.tflite"]
    if drifted.get("batched"):  # the batched model too, or batched requests would not drift
        name = drifted["batched"]["file"]
        shutil.copy(drifted_dir / name, bundle_dir / name)
        manifest["batched"] = drifted["batched"]
        manifest["files"][name] = drifted["files"][name]
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return drifted["sha256"]


def deploy_on(workspace: Workspace, plan: str, cpu_share: float) -> None:
    """render.yaml deploying `plan` with the service told its CPU share, as the gate must run."""
    blueprint = yaml.safe_load(workspace.render_yaml_path.read_text())
    (web,) = [service for service in blueprint["services"] if service["type"] == "web"]
    web["plan"] = plan
    for variable in web["envVars"]:
        if variable["key"] == "CPU_SHARE":
            variable["value"] = f"{cpu_share:g}"
    workspace.render_yaml_path.write_text(yaml.safe_dump(blueprint, sort_keys=False))


def workspace_like(source: Workspace, root: Path, **overrides: dict) -> Workspace:
    """A new workspace on `source`'s demo files, with a copy of its build/ and any overrides."""
    inputs = {key: str(source.demo_dir / name) for key, name in DEMO_INPUT_FILES.items()}
    inputs["folder"] = str(source.demo_dir)
    workspace = make_workspace(root, inputs=inputs, **overrides)
    if source.build_dir.exists():
        shutil.copytree(source.build_dir, workspace.build_dir)
    return workspace


def convert_and_check(tmp_path, inputs: dict, min_accuracy: float | None = None):
    """params.yaml naming the user's files, then the real convert and parity stages."""
    workspace = make_workspace(
        tmp_path / "ws", inputs=inputs, parity={"min_accuracy": min_accuracy}
    )
    converted = run_stage("pipeline.stages.convert", workspace, check=False)
    assert converted.returncode == 0, converted.stderr[-3000:]
    checked = run_stage("pipeline.stages.parity", workspace, check=False)
    if checked.returncode == 0:  # both models the service runs were judged, and passed
        report = read_json(workspace.report_path("parity"))
        assert report["batch_sizes"] == [1, 4]
        batched = {k: m for k, m in report["measures"].items() if k.startswith("batched_")}
        assert batched and all(measure["passed"] for measure in batched.values()), batched
    return workspace, checked
