"""Inputs fingerprints: the same hashes DVC records, and changes named by file and params key."""

import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.fingerprint import MISSING, changes, inputs_fingerprint
from pipeline.paths import Workspace
from pipeline.release.bundle import pipeline_changes


def dvc_project(root: Path) -> Workspace:
    """A tiny real DVC project: one stage on a folder (with bytecode DVC ignores) and params."""
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], cwd=root, check=True)
    (root / "code" / "sub" / "__pycache__").mkdir(parents=True)
    (root / "code" / "run.py").write_text("print('run')\n")
    (root / "code" / "sub" / "helper.py").write_text("VALUE = 1\n")
    (root / "code" / "sub" / "__pycache__" / "helper.pyc").write_bytes(b"\0bytecode")
    (root / ".dvcignore").write_text("__pycache__/\n*.pyc\n")
    (root / "data.txt").write_text("inputs\n")
    params = {"files": {"data": "data.txt"}, "gate": {"limit": 450, "nested": {"deep": 1}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    stage = {
        "cmd": "true",
        "deps": ["code", "${files.data}"],
        "params": ["gate", "files.data"],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"gate": stage}}))
    return Workspace(root)


def test_deps_and_params_are_what_dvc_records_in_dvc_lock(tmp_path):
    workspace = dvc_project(tmp_path)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=tmp_path, check=True)
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["gate"]
    fingerprint = inputs_fingerprint(workspace, "gate")
    assert fingerprint["deps"] == {dep["path"]: dep["md5"] for dep in lock["deps"]}
    assert fingerprint["params"] == lock["params"]
    assert len(fingerprint["digest"]) == 64


def test_a_changed_param_names_its_key(tmp_path):
    workspace = dvc_project(tmp_path)
    before = inputs_fingerprint(workspace, "gate")
    params = yaml.safe_load(workspace.params_path.read_text())
    params["gate"]["nested"]["deep"] = 2
    workspace.params_path.write_text(yaml.safe_dump(params))
    assert changes(before, inputs_fingerprint(workspace, "gate")) == [
        "params.yaml gate.nested.deep changed"
    ]


def test_a_changed_file_in_a_folder_names_the_folder_and_bytecode_does_not_count(tmp_path):
    workspace = dvc_project(tmp_path)
    before = inputs_fingerprint(workspace, "gate")
    (tmp_path / "code" / "sub" / "__pycache__" / "other.pyc").write_bytes(b"\1")
    assert changes(before, inputs_fingerprint(workspace, "gate")) == []
    (tmp_path / "code" / "sub" / "helper.py").write_text("VALUE = 2\n")
    assert changes(before, inputs_fingerprint(workspace, "gate")) == ["code changed"]


def test_a_missing_input_is_named_missing(tmp_path):
    workspace = dvc_project(tmp_path)
    before = inputs_fingerprint(workspace, "gate")
    (tmp_path / "data.txt").unlink()
    now = inputs_fingerprint(workspace, "gate")
    assert now["deps"]["data.txt"] == MISSING
    assert changes(before, now) == ["data.txt is missing"]


def test_a_verdict_without_a_fingerprint_never_matches(tmp_path):
    workspace = dvc_project(tmp_path)
    assert changes(None, inputs_fingerprint(workspace, "gate")) == [
        "the verdict records no inputs fingerprint (it predates fingerprints)"
    ]


def test_promote_reads_dvc_status_as_dvc_says_it(tmp_path):
    workspace = dvc_project(tmp_path)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=tmp_path, check=True)
    assert pipeline_changes(workspace) == []
    params = yaml.safe_load(workspace.params_path.read_text())
    params["gate"]["limit"] = 100
    workspace.params_path.write_text(yaml.safe_dump(params))
    assert pipeline_changes(workspace) == [
        "gate: changed deps params.yaml gate modified (dvc status)"
    ]
