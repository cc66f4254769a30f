"""A remote served by a process outside promote's process tree, as over HTTPS or SSH: a
`git daemon` the test starts in a session of its own, whose receive-pack goes on after the
client is gone, holding each push in its pre-receive hook until the test lets it through. Git
LFS is pointed at the bare repository itself (lfs.url = file://...). Whatever became of the
push, the rerun asks the remote before it says what happened, and ends with the local
repository equal to the remote, the release made once. And a release another checkout pushed
first is adopted, not cut again."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from clones import git
from kill_trials import TEMPLATE_REMOTE, copy_of, finished
from release_repos import promote, set_promote_param, start_promote

from pipeline.paths import Workspace

pytestmark = pytest.mark.slow
DEADLINE_SECONDS = 300  # a bound on each wait; a broken run fails instead of hanging
# The hook counts the pushes that reach it and holds push n until the file go-n appears.
GATED_HOOK = """#!/bin/sh
cat >/dev/null
n=$(ls '{gate}' | grep -c '^arrived-')
n=$((n + 1))
touch '{gate}/arrived-'$n
while [ ! -e '{gate}/go-'$n ]; do sleep 0.05; done
"""


@dataclass
class HeldPushes:
    """The remote's pre-receive hook, holding each push until it is let through."""

    folder: Path

    def wait_arrived(self, number: int, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (self.folder / f"arrived-{number}").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"push {number} never reached the remote"
            time.sleep(0.05)

    def let_through(self, number: int) -> None:
        (self.folder / f"go-{number}").touch()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.05)


@pytest.fixture
def daemon_remote(release_repo, tmp_path):
    """A release repository whose origin is a `git daemon` (git://) with receive-pack
    enabled, started in a session of its own, and whose LFS objects go to the bare repository
    through file://; stopped after the test."""
    workspace, remote = release_repo
    gate = HeldPushes(tmp_path / "held")
    gate.folder.mkdir()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(GATED_HOOK.format(gate=gate.folder))
    hook.chmod(0o755)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={tmp_path}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    root = workspace.root
    git(root, "remote", "set-url", "origin", f"git://127.0.0.1:{port}/{remote.name}")
    git(root, "config", "lfs.url", remote.as_uri())
    wait_until(
        lambda: subprocess.run(["git", "ls-remote", "origin"], cwd=root).returncode == 0,
        "the daemon answering",
    )
    try:
        yield workspace, remote, gate
    finally:
        for number in range(1, 5):  # no hook left waiting
            gate.let_through(number)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def tag_on(remote: Path) -> str | None:
    named = git(remote, "rev-parse", "--verify", "--quiet", "model-v1^{commit}", check=False)
    return named.strip() or None


def assert_agreed(workspace: Workspace, remote: Path) -> None:
    """Local and remote name the same branch and tag; the release was made once."""
    root = workspace.root
    assert git(remote, "show-ref", "--heads", "--tags") == git(
        root, "show-ref", "--heads", "--tags"
    )
    assert git(root, "tag", "--list") == "model-v1\n"
    assert git(root, "log", "--format=%s", "main").count("Promote model-v1") == 1
    assert git(root, "status", "--porcelain") == ""
    assert not list((workspace.build_dir / "promote").glob("*"))


def test_a_push_killed_with_every_process_lands_on_the_server_and_the_rerun_agrees(
    daemon_remote,
):
    workspace, remote, gate = daemon_remote
    before = git(remote, "rev-parse", "main").strip()
    killed = start_promote(workspace)
    gate.wait_arrived(1, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the client and all it started; not the server
    killed.communicate()
    assert tag_on(remote) is None  # the server still holds the push
    rerun = start_promote(workspace)
    gate.wait_arrived(2, rerun)  # the rerun asked, found nothing, and pushed again
    gate.let_through(1)
    wait_until(lambda: tag_on(remote), "the killed run's push landing")
    gate.let_through(2)
    out, err = rerun.communicate(timeout=DEADLINE_SECONDS)
    assert rerun.returncode == 0, err
    assert (
        "an interrupted promote (model-v1, step 'verify') is not on origin (asked with git "
        f"ls-remote: main at {before[:12]}, no model-v1); its push was cut short or is still "
        "arriving there, so the same release commit is pushed again"
    ) in out
    assert "origin holds the release all the same (asked with git ls-remote after the push" in out
    assert f"model-v1 at {tag_on(remote)[:12]})" in out
    assert "it is complete" in out
    assert "as they were" not in out + err
    assert_agreed(workspace, remote)


def test_a_push_that_timed_out_is_kept_until_the_remote_has_it(daemon_remote):
    workspace, remote, gate = daemon_remote
    set_promote_param(workspace, "push_timeout_seconds", 20)
    before = git(remote, "rev-parse", "main").strip()
    first = promote(workspace)  # its push is held past the timeout
    assert first.returncode == 1
    assert "did not finish within 20 s" in first.stderr
    assert (
        f"origin does not name the release (asked with git ls-remote after the push failed: "
        f"main at {before[:12]}, no model-v1), but the push may still be arriving there"
    ) in first.stderr
    assert "the release is kept locally" in first.stderr
    assert "as they were" not in first.stderr
    assert git(workspace.root, "tag", "--list") == "model-v1\n"  # kept, not undone
    gate.let_through(1)  # the server finishes the push its client gave up on
    wait_until(lambda: tag_on(remote), "the timed-out push landing")
    rerun = promote(workspace)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        "an interrupted promote (model-v1, step 'verify') had reached origin (asked with git "
        "ls-remote); it is complete: finished it here"
    ) in rerun.stdout
    assert_agreed(workspace, remote)


def test_the_same_release_pushed_first_by_another_checkout_is_adopted_not_cut_again(
    release_templates, tmp_path
):
    # Two checkouts of one commit promote the same candidate (CI and a laptop at once): the
    # second's push is refused, and it takes the first's release rather than a second one.
    copy_of(release_templates / "promote", tmp_path / "first")
    second = copy_of(release_templates / "promote", tmp_path / "second")
    remote = tmp_path / "first" / TEMPLATE_REMOTE
    git(second.root, "remote", "set-url", "origin", str(remote))
    done, _ = finished(tmp_path / "first")
    assert done.returncode == 0, done.stderr
    landed = tag_on(remote)
    adopted, _ = finished(tmp_path / "second")
    assert adopted.returncode == 0, adopted.stderr
    out = adopted.stdout
    assert (
        f"origin already holds model-v1 at {landed[:12]}: the same release (the same model, "
        f"cut on {git(second.root, 'rev-parse', 'HEAD^').strip()[:12]}) pushed by another run; "
        "adopted it: fetched it, and main and model-v1 here name it now (no release cut again)"
    ) in out
    assert "promoted model-v1: " in out and " on origin/main" in out
    assert "pushed to" not in out
    assert git(second.root, "rev-parse", "model-v1^{commit}").strip() == landed
    assert_agreed(second, remote)
