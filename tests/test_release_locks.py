"""Lock files a killed git or DVC command leaves: every later command fails on them until they
go, and promote removes each one no live process holds, saying so, and leaves the others,
saying who holds them. On a DVC project with its bare remote (tests/kill_trials.py)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clones import git
from kill_trials import TEMPLATE_REMOTE, assert_one_release, command_env, copy_of, finished

pytestmark = pytest.mark.slow

RWLOCKS = {
    "empty": "",
    "not valid JSON (cut short)": '{"read": {"/repo/inputs/model.keras": [{"pid": 4',
}
# DVC's own lock code, holding the repository lock until its input ends.
HOLDING_DVC_LOCK = """
import sys
from dvc.lock import make_lock
lock = make_lock(".dvc/tmp/lock")
lock.lock()
print("held", flush=True)
sys.stdin.read()
"""
# DVC's own lock code, killed while it holds the repository lock, as `dvc` itself would be.
KILLED_HOLDING_HARDLINK_LOCK = """
import os, signal
from dvc.lock import make_lock
make_lock(".dvc/tmp/lock", tmp_dir=".dvc/tmp", hardlink_lock=True).lock()
os.kill(os.getpid(), signal.SIGKILL)
"""

# A process that creates a git lock file as git does and keeps it open until its input ends.
HOLDING_OPEN = """
import os, sys
handle = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
print("open", flush=True)
sys.stdin.read()
"""


def dvc(copy, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=copy / "repo",
        env=command_env(copy),
        capture_output=True,
        text=True,
    )


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


@pytest.mark.parametrize("left", [*RWLOCKS, "a dead holder"])
def test_locks_a_killed_command_left_do_not_block_the_next_promote(
    release_templates, tmp_path, left
):
    copy = tmp_path / "copy"
    workspace = copy_of(release_templates / "promote", copy)
    root = workspace.root
    rwlock = root / ".dvc" / "tmp" / "rwlock"
    if left in RWLOCKS:
        rwlock.write_text(RWLOCKS[left])
        assert "JSON structure is corrupted" in dvc(copy, "status").stderr
    else:
        holder = {"pid": dead_pid(), "cmd": "dvc repro"}
        rwlock.write_text(json.dumps({"write": {str(root / "build"): holder}}))
    for name in ("config.lock", "index.lock"):
        (root / ".git" / name).write_text("")
    blocked = subprocess.run(
        ["git", "config", "--local", "lfs.repositoryformatversion", "0"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert "could not lock config file" in blocked.stderr

    completed, _ = finished(copy)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "removed .git/config.lock, .git/index.lock, left by a git command that was killed" in out
    if left in RWLOCKS:
        assert f"removed .dvc/tmp/rwlock: it was {left}, as a DVC command killed while " in out
    else:
        assert (
            "removed from .dvc/tmp/rwlock the locks of processes that are gone: pid "
            f"{holder['pid']} (dvc repro) on 1 path(s)"
        ) in out
    assert "promoted model-v1" in out
    assert_one_release(workspace, copy / TEMPLATE_REMOTE, "Promote model-v1")
    if left in RWLOCKS:
        assert dvc(copy, "status").returncode == 0


def test_a_hard_link_lock_of_a_killed_dvc_is_removed(release_templates, tmp_path):
    copy = tmp_path / "copy"
    workspace = copy_of(release_templates / "promote", copy)
    root = workspace.root
    assert dvc(copy, "config", "core.hardlink_lock", "true").returncode == 0
    git(root, "commit", "-qam", "DVC locks by hard links (a shared filesystem)")
    # The flock file of the DVC runs before; rwlock.lock's stays, in the way of DVC too.
    (root / ".dvc" / "tmp" / "lock").unlink()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDING_HARDLINK_LOCK], cwd=root, env=command_env(copy)
    )
    assert killed.returncode == -signal.SIGKILL
    assert (root / ".dvc" / "tmp" / "lock").stat().st_nlink == 2
    assert "Unable to acquire lock" in dvc(copy, "status").stderr

    completed, _ = finished(copy)
    assert completed.returncode == 0, completed.stderr
    assert (
        "removed .dvc/tmp/lock, .dvc/tmp/rwlock.lock, left by a DVC command that was killed "
        "(DVC's locks under core.hardlink_lock; no DVC process works here)"
    ) in completed.stdout
    assert_one_release(workspace, copy / TEMPLATE_REMOTE, "Promote model-v1")


def python_holder(cwd: Path, script: str, *args: str) -> subprocess.Popen:
    """`python -c script args` in `cwd`, holding something until its stdin closes; it prints a
    line once it holds it."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def promote_while_held(copy: Path, ready: str, *holders: subprocess.Popen):
    """One whole promote on the copy while `holders` run (the last prints `ready` once it
    holds); every holder is let go after it."""
    try:
        assert holders[-1].stdout.readline() == f"{ready}\n"
        completed, _ = finished(copy)
    finally:
        for process in holders:
            process.communicate("")
    return completed


def test_a_lock_a_live_process_holds_stays_and_the_message_names_the_process(
    release_templates, tmp_path
):
    copy = tmp_path / "copy"
    workspace = copy_of(release_templates / "promote", copy)
    root = workspace.root
    before = git(copy / TEMPLATE_REMOTE, "show-ref")
    (root / ".git" / "config.lock").write_text("")
    (root / ".dvc" / "tmp" / "rwlock").write_text("")
    # A git working in the repository (it may hold the lock), and a DVC holding its lock.
    git_reader = subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE)
    dvc_holder = python_holder(root, HOLDING_DVC_LOCK)
    completed = promote_while_held(copy, "held", git_reader, dvc_holder)
    assert completed.returncode == 1
    out = completed.stdout
    assert f"left .git/config.lock in place: git works there (pid {git_reader.pid}: git " in out
    assert f"left .dvc/tmp/rwlock in place: pid {dvc_holder.pid} holds .dvc/tmp/lock" in out
    assert "`dvc status` failed" in completed.stderr
    assert git(copy / TEMPLATE_REMOTE, "show-ref") == before
    assert (root / ".git" / "config.lock").exists()

    rerun, _ = finished(copy)  # both holders are gone now
    assert rerun.returncode == 0, rerun.stderr
    assert "removed .git/config.lock, left by a git command that was killed" in rerun.stdout
    assert "removed .dvc/tmp/rwlock: it was empty" in rerun.stdout
    assert_one_release(workspace, copy / TEMPLATE_REMOTE, "Promote model-v1")


def test_a_git_lock_a_live_process_has_open_stays_whatever_the_program(release_templates, tmp_path):
    copy = tmp_path / "copy"
    workspace = copy_of(release_templates / "promote", copy)
    index_lock = workspace.root / ".git" / "index.lock"
    before = git(copy / TEMPLATE_REMOTE, "show-ref")
    # Not a git command, and not working in the repository: DVC's own git code takes the index
    # lock inside its Python process the same way.
    holder = python_holder(tmp_path, HOLDING_OPEN, str(index_lock))
    completed = promote_while_held(copy, "open", holder)
    assert completed.returncode == 1
    assert f"left .git/index.lock in place: pid {holder.pid} ({sys.executable} -c " in (
        completed.stdout
    )
    assert "has index.lock open" in completed.stdout
    assert git(copy / TEMPLATE_REMOTE, "show-ref") == before

    rerun, _ = finished(copy)  # the holder is gone: its lock is a killed command's leftover
    assert rerun.returncode == 0, rerun.stderr
    assert "removed .git/index.lock, left by a git command that was killed" in rerun.stdout
    assert_one_release(workspace, copy / TEMPLATE_REMOTE, "Promote model-v1")
