"""A project's release history laid down by hand, for rollback tests that need no model: each
release commits release/ through Git LFS with the params.yaml that built it and the inputs it
names (a DVC-tracked folder or files in git), tags it and pushes it to a bare remote. What a
rollback reads at a tag is all there; the release's own files are bytes, not a converted model.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.init import inputs_block, rewrite_inputs
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.release.git_repo import LFS_FILTER, GitRepo
from pipeline.release.steps import enable_lfs
from pipeline.release.transaction import lfs_attributes
from service.bundle import sha256_of

# The input files a release names, by their key in params.yaml's `inputs`.
FILE_NAMES = {"model": "model.keras", "labels": "labels.txt", "heldout": "heldout.npz"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def dvc(cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def rollback(root: Path, *args: str, wait: bool = True):
    """`python -m pipeline.rollback` on the project at `root`, in a session of its own."""
    command = [sys.executable, "-m", "pipeline.rollback", *args]
    env = {**os.environ, WORKSPACE_ENV: str(root)}
    if not wait:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)


def new_project(base: Path) -> tuple[Path, Path, Path]:
    """A git and DVC project with a default DVC remote, and an empty bare git remote: the
    project's root, the bare remote and the DVC remote's folder."""
    root, bare, storage = base / "project", base / "origin.git", base / "dvc-storage"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "release@example.com")
    git(root, "config", "user.name", "Release Engineer")
    enable_lfs(GitRepo(root))  # as the first promote leaves it: LFS's filters in its own config
    shutil.copy(REPO_ROOT / "params.yaml", root / "params.yaml")
    (root / ".gitignore").write_text("/build/\n")
    (root / ".gitattributes").write_text("\n".join(lfs_attributes("release")) + "\n")
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "storage", str(storage))
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "remote", "add", "origin", str(bare))
    return root, bare, storage


def write_inputs(folder: Path, content: str, normaliser: bool = False) -> dict[str, str | None]:
    """The user's files in `folder` (a fresh one), their names by key."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names: dict[str, str | None] = {**FILE_NAMES, "normaliser": None, "custom_objects": None}
    if normaliser:
        names["normaliser"] = "normaliser.joblib"
    for name in filter(None, names.values()):
        (folder / name).write_text(f"{content} {name}\n")
    return names


def release(
    root: Path, tag: str, folder: str, names: dict, tracked_by="dvc", deployment=None
) -> str:
    """Point params.yaml at `folder`'s files, track them (`dvc add`, or git), commit release/
    through Git LFS (its manifest with `deployment`, the gated plan, if given), tag `tag`, push
    branch and tag; the released model's sha256."""
    rewrite_inputs(root / "params.yaml", inputs_block(folder, names, False))
    if tracked_by == "dvc":
        dvc(root, "add", "-q", folder)
        dvc(root, "push", "-q")
    release_dir = root / "release"
    shutil.rmtree(release_dir, ignore_errors=True)
    release_dir.mkdir()
    (release_dir / "model.tflite").write_bytes(f"the model of {tag}".encode())
    inputs = {key: f"{folder}/{name}" if name else "none" for key, name in names.items()}
    manifest = {"tag": tag, "sha256": sha256_of(release_dir / "model.tflite")}
    manifest["params"] = {"inputs": {"folder": folder, **inputs}}
    if deployment:
        manifest["deployment"] = deployment
    (release_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    git(root, *LFS_FILTER, "add", "-A")
    git(root, "commit", "-qm", f"Promote {tag}")
    git(root, "tag", "-a", tag, "-m", f"Promote {tag}")
    git(root, "push", "-q", "--no-verify", "origin", "main", tag)
    return manifest["sha256"]


def folder_digest(folder: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in sorted(folder.iterdir())}


def dvc_objects(root: Path, tag: str, dvc_file: str = "model.dvc") -> set[str]:
    """The DVC cache objects of the folder `dvc_file` tracks at `tag` (listing and files)."""
    import yaml

    dir_md5 = yaml.safe_load(git(root, "show", f"{tag}:{dvc_file}"))["outs"][0]["md5"]
    listing = json.loads(cache_path(root, dir_md5).read_text())
    return {dir_md5, *(entry["md5"] for entry in listing)}


def cache_path(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
