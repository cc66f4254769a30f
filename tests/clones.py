"""Clones of a repository as a user and CI make them, and the commands run in one: git, dvc
and `python -m` on the clone's own code."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.paths import REPO_ROOT

# These tests prove DVC's way through the stages, not a plan's timing: the gate runs its
# whole course with fewer requests, one worst-case round and small bodies (the largest
# worst-case bodies at 0.1 CPU are most of a full gate's time).
SHORT_GATE = {
    "requests": 120,
    "cost_worst_case_rounds": 1,
    "service_env": {"MAX_BODY_BYTES": str(256 * 1024)},
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """`git <args>` in `cwd`; its standard output."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check
    ).stdout


def dvc(clone: Path, *args: str) -> subprocess.CompletedProcess:
    """Run dvc in the clone with the project's Python first on PATH, as `make demo` does."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PIPELINE_WORKSPACE", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def python(clone: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m <module>` in the clone, on the clone's own pipeline code."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("PIPELINE_WORKSPACE", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def clone_of(source: Path, clone: Path) -> Path:
    """A git clone of `source` with its own identity (`dvc exp run` commits, CI may have none)."""
    # The pipeline needs no Git LFS file (only docs/benchmark.png is one), and a checkout that
    # was itself cloned without git-lfs, as CI's is, holds only the pointer, not the object:
    # smudging it would fail the clone. So the clone keeps pointers, now and on later checkouts.
    subprocess.run(
        ["git", "clone", "-q", str(source), str(clone)],
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
        check=True,
    )
    git(clone, "lfs", "install", "--local", "--skip-smudge")
    git(clone, "config", "user.name", "Pipeline Test")
    git(clone, "config", "user.email", "pipeline-test@example.com")
    return clone


def fresh_clone(remote: Path, destination: Path, ref: str = "main") -> Path:
    """A clone as a user on a fresh machine makes it: LFS enabled for that clone alone."""
    git(destination.parent, "clone", "-q", "--branch", ref, str(remote), str(destination))
    git(destination, "lfs", "install", "--local")
    git(destination, "lfs", "pull")
    return destination


def reproduce(folder: Path) -> None:
    """A git clone of this repository's HEAD in `folder`/repo, with a smaller demo to keep the
    run short, after one full `dvc repro`."""
    clone = clone_of(REPO_ROOT, folder / "repo")
    params_path = clone / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["demo_model"].update(train_samples=300, heldout_samples=60, epochs=3)
    params["parity"]["min_accuracy"] = 0.3  # the smaller demo is right about half the time
    params["gate"].update(SHORT_GATE)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(clone, "commit", "-qam", "smaller demo for the test")
    completed = dvc(clone, "repro")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
