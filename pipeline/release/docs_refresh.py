"""The docs a release commits: README.md's and docs/'s generated blocks and figures rewritten
from the reports the release commits (what `make docs` does, in this process), so that the
branch a release lands on passes `python -m pipeline.report.docs --check` wherever it was cut.
Reports that lack a figure the docs quote (an old release's) leave the docs as they are.
"""

import contextlib
import io
import os
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.report.docs import PICTURES, documents, write_docs

DRY_RUN_STEP = "regenerate README.md and docs/ from the reports it commits (as `make docs` does)"


def docs_paths(workspace: Workspace, repo_root: Path) -> list[str]:
    """Every file the refresh may rewrite, relative to the repository root: an undo puts each
    back."""
    paths = [*documents(workspace), *(workspace.root / copy for copy in PICTURES.values())]
    return [os.path.relpath(path, repo_root) for path in paths]


def refresh_docs(workspace: Workspace, repo_root: Path) -> list[str]:
    """Rewrite the docs from the workspace's reports and params.yaml; the files it changed,
    relative to the repository root."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            changed = write_docs(workspace)
    except SystemExit as error:  # a figure the docs quote that these reports do not hold
        # Nothing is written then; a release (a rollback above all) never waits on its docs.
        print(f"the docs are not regenerated ({error}); the release goes ahead without them")
        return []
    if changed:
        print(f"docs regenerated from the reports: {', '.join(changed)}")
    return [os.path.relpath(workspace.root / name, repo_root) for name in changed]
