"""The docs a release commits (pipeline/release/docs_refresh.py): promote and rollback rewrite
the generated blocks and figures of README.md and docs/ from the reports they commit, so the
branch they land on passes the docs check wherever the release was cut."""

import json
import shutil
import subprocess

import pytest
from clones import fresh_clone, git
from release_repos import promote, refuse
from workspaces import run_stage

from pipeline.paths import REPO_ROOT, Workspace
from pipeline.report.doc_figures import FIGURE
from pipeline.report.docs import BLOCK

pytestmark = pytest.mark.slow
DOCS = ("README.md", "docs")


def docs_check(root) -> subprocess.CompletedProcess:
    return run_stage("pipeline.report.docs", Workspace(root), check=False, arguments=["--check"])


def outside_blocks(text: str) -> str:
    """The hand-written text: every generated block and figure reduced to its name."""
    return FIGURE.sub(lambda match: match["spec"], BLOCK.sub(lambda match: match["name"], text))


def docs_text(root) -> dict[str, str]:
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return {page.relative_to(root).as_posix(): page.read_text() for page in pages}


@pytest.fixture
def documented_repo(release_repo):
    """release_repo with this repository's README.md and docs/ committed and pushed: they quote
    this repository's reports, not the candidate's."""
    workspace, remote = release_repo
    shutil.copy(REPO_ROOT / "README.md", workspace.root / "README.md")
    shutil.copytree(REPO_ROOT / "docs", workspace.root / "docs")
    git(workspace.root, "add", *DOCS)
    git(workspace.root, "commit", "-qm", "the docs")
    git(workspace.root, "push", "-q", "origin", "main")
    return workspace, remote


def test_a_promote_commits_docs_that_quote_the_reports_it_commits(documented_repo, tmp_path):
    workspace, remote = documented_repo
    committed = docs_text(workspace.root)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    refuse(workspace, remote, unchanged=("head", "tags", "status", "remote_refs"))
    assert docs_text(workspace.root) == committed  # undone with the rest
    hook.unlink()
    dry = promote(workspace, "--dry-run")
    assert "regenerate README.md and docs/ from the reports it commits" in dry.stdout
    assert docs_text(workspace.root) == committed
    promoted = promote(workspace)
    assert promoted.returncode == 0, promoted.stderr
    assert "docs regenerated from the reports: README.md" in promoted.stdout
    assert git(workspace.root, "status", "--porcelain") == ""
    clone = fresh_clone(remote, tmp_path / "clone", "model-v1")
    checked = docs_check(clone)
    assert checked.returncode == 0 and "the docs match the reports" in checked.stdout
    released = docs_text(clone)
    git(clone, "checkout", "HEAD~1", "--", *DOCS)  # the release's reports with the docs before
    assert docs_check(clone).returncode == 1
    assert {name: outside_blocks(text) for name, text in released.items()} == {
        name: outside_blocks(text) for name, text in committed.items()
    }


def test_a_rollback_commits_the_docs_of_the_reports_it_restores(documented_repo, tmp_path):
    workspace, remote = documented_repo
    assert promote(workspace).returncode == 0
    # A later release's reports and the docs quoting them (as its promote commits them).
    gate_path = workspace.reports_dir / "gate.json"
    gate = json.loads(gate_path.read_text())
    gate["measures"]["worst_case_memory_mb"]["value"] += 1.0
    gate_path.write_text(json.dumps(gate, indent=2))
    run_stage("pipeline.report.docs", workspace)
    git(workspace.root, "commit", "-qam", "a later release")
    assert git(workspace.root, "diff", "model-v1", "HEAD", "--", *DOCS) != ""
    rolled = promote(workspace, "--rollback", "model-v1")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "docs regenerated from the reports" in rolled.stdout
    clone = fresh_clone(remote, tmp_path / "clone")
    assert git(clone, "diff", "model-v1", "HEAD", "--", *DOCS) == ""
    assert docs_check(clone).returncode == 0
