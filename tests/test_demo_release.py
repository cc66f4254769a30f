"""The README's path, as a newcomer takes it: `make demo` in a fresh clone, then the release step
it prints and the releasing docs' next command, up to `promoted model-v1` on a bare remote.

The clone's demo is smaller than the committed one, so its run rewrites `dvc.lock`,
`demo/dvc.lock` and `reports/` as a machine of another CPU make does: the release must commit
them, with nothing typed but what the docs name."""

import pytest
from clones import git, python

pytestmark = pytest.mark.slow


def test_after_make_demo_its_release_step_and_the_docs_next_one_promote_model_v1(
    reproduced_copy, tmp_path
):
    repo = reproduced_copy
    # Its origin is the repository Render deploys: a bare one on disk, holding the team's code.
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "checkout", "-q", "-B", "main")
    git(repo, "remote", "set-url", "origin", str(bare))
    git(repo, "push", "-q", "--no-verify", "origin", "main")
    rewritten = {"dvc.lock", "demo/dvc.lock", "reports/gate.json", "reports/parity.json"}
    assert rewritten <= set(git(repo, "diff", "--name-only", "HEAD").split())

    summary = python(repo, "pipeline.summary", "--next-steps")
    assert summary.returncode == 0, summary.stdout + summary.stderr
    (step,) = [line for line in summary.stdout.splitlines() if "release it:" in line]
    command = step.split("release it:", 1)[1].split("(", 1)[0].split()
    assert command == ["python", "-m", "pipeline.promote", "--dry-run"]

    dry = python(repo, *command[2:])
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "tag model-v1" in dry.stdout
    assert "dvc.lock" in dry.stdout and "demo/dvc.lock" in dry.stdout
    assert git(bare, "tag", "--list") == ""

    promoted = python(repo, "pipeline.promote")  # the releasing docs' next line
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert promoted.stdout.splitlines()[-1].startswith("promoted model-v1: ")
    assert git(bare, "rev-parse", "model-v1^{commit}") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    released = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert rewritten | {"release/model.tflite", "release/manifest.json"} <= released
