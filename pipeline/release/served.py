"""What a release serves: the model, the manifest fields the service reads, and the service
itself (its code and how Render builds and starts it). Versions are keyed on this, not on HEAD:
a release that would serve the same thing as the current one is not cut."""

import json

from pipeline.release.git_repo import GitRepo
from service.bundle import MANIFEST_NAME

# The manifest fields the service reads or reports (service/predictor.py, service/app.py);
# per-release fields (version, tag, promoted_at, verdicts, golden) are not what is served.
SERVED_MANIFEST_KEYS = (
    "schema",
    "model_file",
    "sha256",
    "input",
    "output",
    "labels",
    "preprocessing",
    "quantization",
)
# The service's code and requirements, and the Blueprint Render builds and starts it from.
SERVED_PATHS = ("service", "render.yaml", ".python-version")


def current_release(repo: GitRepo, release_path: str) -> tuple[dict, str] | None:
    """The manifest at HEAD and the commit that last wrote the release; None before the first."""
    text = repo.run("show", f"HEAD:{release_path}/{MANIFEST_NAME}", check=False)
    if not text:
        return None
    commit = repo.run("log", "-1", "--format=%H", "HEAD", "--", release_path).strip()
    return json.loads(text), commit


def tree_id(repo: GitRepo, rev: str, path: str) -> str:
    return repo.run("rev-parse", "--verify", "--quiet", f"{rev}:{path}", check=False).strip()


def serving_changes(repo: GitRepo, released: dict, release_commit: str, candidate: dict) -> list:
    """What a release of `candidate` from HEAD would change in what is served; [] for nothing."""
    changed = [
        f"manifest {key}" for key in SERVED_MANIFEST_KEYS if released.get(key) != candidate.get(key)
    ]
    changed += [
        path
        for path in SERVED_PATHS
        if tree_id(repo, release_commit, path) != tree_id(repo, "HEAD", path)
    ]
    return changed


def on_remote(repo: GitRepo, commit: str, remote: str, branch: str) -> bool:
    """Whether the remote's branch holds `commit` (judged from the objects known here)."""
    remote_sha = repo.remote_ref_sha(remote, f"refs/heads/{branch}")
    return bool(remote_sha) and repo.is_ancestor(commit, remote_sha)
