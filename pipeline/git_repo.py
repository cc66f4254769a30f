"""A thin wrapper over the git and git-lfs commands that promotion needs."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class GitError(Exception):
    """A git command failed; the message holds the command and git's own words."""


@dataclass(frozen=True)
class GitRepo:
    """The git repository at `root`."""

    root: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run `git <args>` in the repository; its stdout, or GitError."""
        try:
            completed = subprocess.run(
                ["git", *args], cwd=self.root, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {' '.join(args)} did not finish within {timeout:.0f} s") from None
        if check and completed.returncode != 0:
            message = (completed.stderr or completed.stdout).strip().splitlines()
            raise GitError(f"git {' '.join(args)} failed: {' / '.join(message[-3:])}")
        return completed.stdout

    @classmethod
    def containing(cls, path: Path) -> "GitRepo":
        """The repository that holds `path`."""
        if shutil.which("git") is None:
            raise GitError("git is not installed; install git")
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True
        )
        if top.returncode != 0:
            raise GitError(f"{path} is not inside a git repository")
        return cls(Path(top.stdout.strip()))

    def head(self) -> str:
        return self.run("rev-parse", "HEAD").strip()

    def branch(self) -> str:
        name = self.run("rev-parse", "--abbrev-ref", "HEAD").strip()
        if name == "HEAD":
            raise GitError("HEAD is detached; check out the branch to promote on")
        return name

    def dirty_paths(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """Tracked files with changes, staged or not, except those under `ignore`."""
        lines = self.run("status", "--porcelain", "--untracked-files=no").splitlines()
        paths = [line[3:] for line in lines]
        return [path for path in paths if not any(path.startswith(prefix) for prefix in ignore)]

    def tags(self, pattern: str) -> list[str]:
        return self.run("tag", "--list", pattern).split()

    def remote_url(self, remote: str) -> str:
        return self.run("remote", "get-url", remote).strip()

    def staged_blob(self, path: str) -> bytes:
        """The bytes git will commit for `path` (an LFS pointer when LFS tracks it)."""
        completed = subprocess.run(
            ["git", "show", f":{path}"], cwd=self.root, capture_output=True, timeout=60
        )
        if completed.returncode != 0:
            raise GitError(f"{path} is not staged")
        return completed.stdout


def require_git_lfs() -> str:
    """git-lfs's version line, or GitError saying how to install it."""
    try:
        completed = subprocess.run(
            ["git", "lfs", "version"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        completed = None
    if completed is None or completed.returncode != 0:
        raise GitError(
            "git-lfs is not installed, so the model would be committed as a plain blob; "
            "install it (apt-get install git-lfs, or `make system-deps`) and run again"
        )
    return completed.stdout.strip()
