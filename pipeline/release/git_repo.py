"""A thin wrapper over the git and git-lfs commands that promotion needs."""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from service.errors import Refusal

# Enough of git's message to hold its hint lines (git-lfs lists every failed object).
MAX_ERROR_LINES = 30
# Git LFS's filters for promote's own git commands, so nothing depends on a global or system
# `git lfs install` (a fresh laptop or CI runner has neither) and no hook is installed.
LFS_FILTER = (
    "-c",
    "filter.lfs.clean=git-lfs clean -- %f",
    "-c",
    "filter.lfs.smudge=git-lfs smudge -- %f",
    "-c",
    "filter.lfs.process=git-lfs filter-process",
    "-c",
    "filter.lfs.required=true",
)


class GitError(Refusal):
    """A git command failed; the message holds the command and git's own words."""


@dataclass(frozen=True)
class GitRepo:
    """The git repository at `root`."""

    root: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run `git <args>` in the repository; its stdout, or GitError with git's own words."""
        completed = self.attempt(*args, timeout=timeout)
        if check and completed.returncode != 0:
            words = (completed.stderr or completed.stdout).strip().splitlines()[-MAX_ERROR_LINES:]
            raise GitError(f"git {' '.join(args)} failed:\n  " + "\n  ".join(words))
        return completed.stdout

    def attempt(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `git <args>` whatever its exit code; GitError only when it outlives `timeout`."""
        # Never wait for a password prompt nobody will answer (CI, a cron job).
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {' '.join(args)} did not finish within {timeout:.0f} s") from None

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

    def config(self, key: str) -> str:
        """A config value from any scope git reads here; "" when unset."""
        return self.run("config", "--get", key, check=False).strip()

    def identity_problem(self) -> str | None:
        """Why git could not sign a commit here (it needs an author and a committer), in git's
        own words and naming the fix; None when it can."""
        for role in ("AUTHOR", "COMMITTER"):
            completed = self.attempt("var", f"GIT_{role}_IDENT")
            if completed.returncode != 0:
                words = " ".join(completed.stderr.split()[-60:]) or "no output"
                return (
                    f"git has no {role.lower()} identity to sign the release commit (`git var "
                    f'GIT_{role}_IDENT`: {words}); run `git config user.name "Your Name"` and '
                    "`git config user.email you@example.com` in this repository (a workflow "
                    "does it before promoting)"
                )
        return None

    def ref_sha(self, ref: str) -> str | None:
        """The commit `ref` names here, or None."""
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return out.strip() or None

    def remote_ref_sha(self, remote: str, ref: str, timeout: float = 60) -> str | None:
        """The commit the remote's `ref` (refs/heads/x, refs/tags/y) names, or None."""
        return self.remote_ref_shas(remote, [ref], timeout)[0]

    def remote_ref_shas(self, remote: str, refs: list[str], timeout: float = 60) -> list:
        """The commit each of the remote's `refs` names (a tag's peeled), or None; one
        `git ls-remote`."""
        peeled = [f"{ref}^{{}}" for ref in refs]
        lines = self.run("ls-remote", remote, *refs, *peeled, timeout=timeout).splitlines()
        found = dict(reversed(line.split("\t", 1)) for line in lines if "\t" in line)
        return [found.get(f"{ref}^{{}}") or found.get(ref) for ref in refs]

    def local_git_dir(self, url: str) -> Path | None:
        """The git directory `url` names when it is a repository on this machine (a path,
        relative to this one's root, or a file:// URL); None for a server (https://, ssh://,
        host:path) or a folder that holds no repository."""
        path = url.removeprefix("file://")
        if "://" in path or (":" in path and "/" not in path.split(":", 1)[0]):
            return None
        folder = self.root / path  # an absolute path stays itself
        for candidate in (folder / ".git", folder):
            if (candidate / "HEAD").is_file() and (candidate / "refs").is_dir():
                return candidate.resolve()
        return None

    def is_ancestor(self, commit: str, descendant: str) -> bool:
        """Whether `descendant` contains `commit` (False when either is unknown here)."""
        completed = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, descendant],
            cwd=self.root,
            capture_output=True,
            timeout=60,
        )
        return completed.returncode == 0

    def dirty_paths(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """Tracked files with changes, staged or not, except those under `ignore`; read through
        LFS's filters, so a model checked out as its bytes is not taken for a changed pointer."""
        lines = self.run(*LFS_FILTER, "status", "--porcelain", "--untracked-files=no").splitlines()
        paths = [line[3:] for line in lines]
        return [path for path in paths if not any(path.startswith(prefix) for prefix in ignore)]

    def tags(self, pattern: str) -> list[str]:
        return self.run("tag", "--list", pattern).split()

    def remote_url(self, remote: str) -> str:
        return self.run("remote", "get-url", remote).strip()


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
