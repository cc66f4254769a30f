"""Each command's --help prints its usage under the name it is run by, and does nothing else."""

import os
import subprocess
import sys

import pytest

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV


@pytest.mark.parametrize(
    "module, says",
    [
        ("pipeline.inputs.pull", "Pull the user's DVC-tracked inputs on a CI runner"),
        ("pipeline.summary", "Every gate's verdict for the current candidate."),
        ("checks.smoke", "Post-deploy smoke check: prove that the model live at URL"),
    ],
)
def test_help_prints_the_usage_and_does_nothing_else(module, says, tmp_path):
    (tmp_path / ".dvc").mkdir()  # a DVC project with no remote: a pull would say so
    completed = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"usage: python -m {module} ")
    assert says in " ".join(completed.stdout.split())
    assert "nothing to pull" not in completed.stdout and completed.stderr == ""
