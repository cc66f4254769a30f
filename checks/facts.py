"""What the post-deploy workflow knows besides the smoke check's report: the settings it passed
and what the checkout in the working folder holds (its branch, release tags and their sha256s,
when release/ last changed). Standard library only, as checks/after_deploy.py.
"""

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Facts:
    """What the workflow knows besides the report: settings, and the checkout the check read."""

    checked_url: str
    service_url: str  # the repository variable SERVICE_URL: the service Render deploys
    render_branch: str  # the repository variable RENDER_BRANCH
    rollback_setting: str  # the repository variable ROLLBACK_ON_WRONG_MODEL, as set
    branch: str  # the branch checked out, whose release/manifest.json the check compared with
    commit: str
    release_tags: tuple[str, ...]  # tags whose tree holds a release manifest
    release_changed_at: float | None  # when release/ last changed on the branch (merge or not)
    now: float
    run_url: str
    release_sha256s: dict[str, str] = field(default_factory=dict)  # tag: its manifest's sha256


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def tree_holds(ref: str, path: str) -> bool:
    command = ["git", "cat-file", "-e", f"{ref}:{path}"]
    return subprocess.run(command, capture_output=True).returncode == 0


def manifest_sha256(tag: str, manifest: str) -> str:
    """The model sha256 the release manifest at `tag` names; '' when it names none."""
    try:
        named = json.loads(git("show", f"{tag}:{manifest}")).get("sha256")
    except (ValueError, AttributeError):
        return ""
    return named if isinstance(named, str) else ""


def checkout_facts(args: argparse.Namespace, release_dir: str) -> Facts:
    """The settings the workflow passed, and what the checkout in the working folder holds."""
    manifest = f"{release_dir.rstrip('/')}/manifest.json"
    tags = tuple(tag for tag in git("tag", "--list").split() if tree_holds(tag, manifest))
    # --first-parent: after a merge into the branch, the merge is when release/ changed there.
    changed = git("log", "-1", "--first-parent", "--format=%ct", "--", release_dir).strip()
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    run_id = os.environ.get("GITHUB_RUN_ID")
    return Facts(
        checked_url=args.checked_url,
        service_url=args.service_url,
        render_branch=args.render_branch,
        rollback_setting=args.rollback_setting,
        branch=git("branch", "--show-current").strip(),
        commit=git("rev-parse", "HEAD").strip(),
        release_tags=tags,
        release_sha256s={tag: manifest_sha256(tag, manifest) for tag in tags},
        release_changed_at=float(changed) if changed else None,
        now=time.time(),
        run_url=f"{server}/{repository}/actions/runs/{run_id}" if run_id else "",
    )
