"""A release repository: a git repository with a bare remote and a real candidate that passed
every gate, as a release engineer has it before promoting; the promote command run on it and
what a refused promotion must leave as it was; a promote started in the background, a remote
that holds pushes, and a kill -9.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from clones import git
from workspaces import DEMO_INPUT_FILES, make_workspace, run_stage

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.verdicts import read_json, write_verdict
from service.bundle import sha256_of


def make_release_repo(
    checked_workspace: Workspace, gated_workspace: Workspace, tmp_path: Path
) -> tuple[Workspace, Path]:
    """The repository under `tmp_path`/repo and its bare remote, `tmp_path`/remote.git."""
    demo_workspace = checked_workspace
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    # The user's files live in the repository and are committed: promote refuses inputs that
    # neither git nor DVC tracks, since CI could not rebuild the candidate from them.
    inputs = {key: f"inputs/{name}" for key, name in DEMO_INPUT_FILES.items()}
    workspace = make_workspace(tmp_path / "repo", inputs={**inputs, "folder": "inputs"})
    root = workspace.root
    shutil.copy(gated_workspace.render_yaml_path, workspace.render_yaml_path)  # its plan
    shutil.copytree(demo_workspace.demo_dir, root / "inputs")
    (root / ".gitignore").write_text("build/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "release@example.com")
    git(root, "config", "user.name", "Release Engineer")
    git(root, "add", ".")
    git(root, "commit", "-qm", "project")
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "-u", "origin", "main")
    shutil.copytree(demo_workspace.candidate_dir, workspace.candidate_dir)
    workspace.parity_predictions_path.parent.mkdir(parents=True)
    shutil.copy(demo_workspace.parity_predictions_path, workspace.parity_predictions_path)
    workspace.reports_dir.mkdir()
    # The real verdicts (each stage run once per session on the same candidate and input
    # files), as each stage writes them here: the fingerprint names this workspace.
    for stage, source in (
        ("convert", demo_workspace),
        ("parity", demo_workspace),
        ("gate", gated_workspace),
    ):
        verdict = read_json(source.report_path(stage))
        verdict.pop("inputs_fingerprint", None)
        write_verdict(workspace, stage, verdict)
    for plot in demo_workspace.reports_dir.glob("parity_*.csv"):
        shutil.copy(plot, workspace.reports_dir / plot.name)
    return workspace, remote


def write_gate_verdict(workspace: Workspace, passed: bool = True, enforced: bool = True) -> None:
    """The gate stage's verdict for the current candidate, written as the gate writes it, on
    the plan, service environment and workers of the workspace's real gate verdict."""
    real = read_json(workspace.report_path("gate"))
    write_verdict(
        workspace,
        "gate",
        {
            **{key: real[key] for key in ("plan", "render_env", "figures") if key in real},
            "passed": passed,
            "enforced": enforced,
            "candidate_sha256": sha256_of(workspace.candidate_dir / "model.tflite"),
            "measures": {
                "peak_memory_mb": {"value": 120.0, "threshold": 450, "rule": "<=", "passed": passed}
            },
        },
    )


def build_candidate(workspace: Workspace, quantization: str) -> str:
    """Run the real convert and parity stages for `quantization`; the candidate's sha256."""
    params = yaml.safe_load(workspace.params_path.read_text())
    params["convert"]["quantization"] = quantization
    workspace.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(workspace.root, "commit", "-qam", f"quantization {quantization}")
    run_stage("pipeline.stages.convert", workspace)
    run_stage("pipeline.stages.parity", workspace)
    write_gate_verdict(workspace)
    return sha256_of(workspace.candidate_dir / "model.tflite")


def promote(workspace: Workspace, *args: str, path: str | None = None):
    """`python -m pipeline.promote <args>` on the workspace, with PATH `path` if given."""
    env = {**os.environ, WORKSPACE_ENV: str(workspace.root)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pipeline.promote", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def set_promote_param(workspace: Workspace, key: str, value) -> None:
    """params.yaml's promote.<key> set to `value`, and committed."""
    params = yaml.safe_load(workspace.params_path.read_text())
    params["promote"][key] = value
    workspace.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(workspace.root, "commit", "-qam", f"promote.{key}: {value}")


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def snapshot(workspace: Workspace, remote: Path) -> dict:
    """Everything a refused promotion must leave as it was."""
    return {
        "head": git(workspace.root, "rev-parse", "HEAD"),
        "tags": git(workspace.root, "tag", "--list"),
        "status": git(workspace.root, "status", "--porcelain"),
        "remote_refs": git(remote, "for-each-ref"),
        "remote_lfs": listing(remote / "lfs") if (remote / "lfs").exists() else [],
        "release": listing(workspace.release_dir) if workspace.release_dir.exists() else [],
    }


def refuse(workspace, remote, *args, path=None, unchanged=None) -> str:
    """Promote, which must refuse (exit 1) and leave the `unchanged` parts of the snapshot (all
    by default) as they were; its standard error."""
    before = snapshot(workspace, remote)
    completed = promote(workspace, *args, path=path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    after = snapshot(workspace, remote)
    for key in unchanged or before:
        assert after[key] == before[key], key
    return completed.stderr


def refs(repository: Path) -> str:
    """Every branch and tag with its commit, as `git show-ref` lists them."""
    return git(repository, "show-ref", "--heads", "--tags")


def start_promote(workspace: Workspace, *args: str) -> subprocess.Popen:
    """`python -m pipeline.promote` in the background, in a session of its own, so a kill can
    take every process it started with it, as a power cut would."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.promote", *args],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_9(process: subprocess.Popen, every_process: bool) -> None:
    """SIGKILL promote alone, or promote and every process it started (its session)."""
    with contextlib.suppress(ProcessLookupError):
        if every_process:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    process.communicate(timeout=60)


def slow_remote(remote: Path, seconds: float) -> Path:
    """A remote whose pre-receive hook holds each push for `seconds`; the marker file it
    returns appears when a push reaches the hook."""
    marker = remote / "push-arrived"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\ntouch '{marker}'\nsleep {seconds}\nexit 0\n")
    hook.chmod(0o755)
    return marker
