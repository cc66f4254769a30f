"""kill -9 of a release while its push is in flight (a remote whose pre-receive hook is slow),
killing promote alone or with every git it started. The next run always ends with exactly one
complete release on both sides, or a rollback finished once. Kills at random moments of the
whole run are tests/test_release_kills.py's."""

import signal
import time

import pytest
from clones import git
from release_repos import build_candidate, kill_9, promote, refs, slow_remote, start_promote

from service.bundle import sha256_of

pytestmark = pytest.mark.slow


def wait_for(condition, what: str, seconds: float = 600) -> None:
    """Poll `condition` until it holds; bounded so a broken run fails instead of hanging."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.01)


def assert_one_complete_release(workspace, remote) -> None:
    root = workspace.root
    assert git(root, "tag", "--list") == "model-v1\n"
    assert refs(remote) == refs(root)  # same branch and tag on both sides, no orphan
    assert git(root, "log", "--format=%s", "main").count("Promote model-v1") == 1
    assert git(root, "status", "--porcelain") == ""
    # No stale git lock; the release lock's file stays, its flock freed by the kernel.
    locks = [path.name for path in (root / ".git").glob("**/*.lock")]
    assert locks in ([], ["pipeline-release.lock"]), locks
    assert not list((workspace.build_dir / "promote").glob("*"))
    assert sha256_of(workspace.release_dir / "model.tflite") == sha256_of(
        workspace.candidate_dir / "model.tflite"
    )


@pytest.mark.parametrize("every_process", [True, False], ids=["with-its-git", "promote-alone"])
def test_kill_9_while_the_push_is_in_flight_then_rerun_completes_one_release(
    release_repo, every_process
):
    # Killed with its git, the push dies unlanded; killed alone, the push lands afterwards,
    # and the next run must wait for it rather than undo a release the remote is taking.
    workspace, remote = release_repo
    before = refs(remote)
    marker = slow_remote(remote, seconds=2)
    process = start_promote(workspace)
    wait_for(marker.exists, "the push reaching the remote")
    kill_9(process, every_process)
    assert process.returncode == -signal.SIGKILL
    if every_process:  # and the locks a git killed mid-command leaves, whichever it was
        for lock in ("index.lock", "refs/heads/main.lock", "refs/tags/model-v1.lock"):
            (workspace.root / ".git" / lock).write_text("")
    rerun = promote(workspace)
    assert rerun.returncode == 0, rerun.stderr
    if every_process:  # the push died with it: the rerun sends the same release commit again
        assert "is not on origin (asked with git ls-remote: main at" in rerun.stdout
        assert "the same release commit is pushed again" in rerun.stdout
        assert "pushed it to origin; it is complete" in rerun.stdout
        assert (
            "removed .git/index.lock, .git/refs/heads/main.lock, .git/refs/tags/model-v1.lock, "
            "left by a git command that was killed"
        ) in rerun.stdout
        assert before != refs(remote)
    else:
        assert "had reached origin (asked with git ls-remote" in rerun.stdout
        assert "it is complete" in rerun.stdout
    assert_one_complete_release(workspace, remote)


def test_a_killed_rollback_is_undone_or_finished_by_the_next_run(release_repo):
    workspace, remote = release_repo
    root = workspace.root
    assert promote(workspace).returncode == 0
    build_candidate(workspace, "float16")
    assert promote(workspace).returncode == 0
    v2_refs = refs(remote)
    marker = slow_remote(remote, seconds=2)
    # First killed with its git while the push is in flight: it never lands. Then killed
    # alone at the same point: its push lands after it died.
    for every_process in (True, False):
        marker.unlink(missing_ok=True)
        process = start_promote(workspace, "--rollback", "model-v1")
        wait_for(marker.exists, "the rollback's push reaching the remote")
        kill_9(process, every_process)
        assert process.returncode == -signal.SIGKILL
    rerun = promote(workspace, "--rollback", "model-v1")
    assert rerun.returncode == 0, rerun.stderr
    assert "had reached origin (asked with git ls-remote" in rerun.stdout
    assert "it is complete" in rerun.stdout
    assert "already at model-v1" in rerun.stdout
    assert refs(remote) != v2_refs and refs(remote) == refs(root)
    log = git(root, "log", "--format=%s", "main")
    assert log.count("Roll back the release to model-v1") == 1
    assert git(root, "diff", "model-v1", "HEAD", "--stat", "--", "release", "reports") == ""
    assert git(root, "status", "--porcelain") == ""
    assert not list((workspace.build_dir / "promote").glob("*"))


@pytest.mark.parametrize("every_process", [True, False], ids=["never-landed", "landed"])
def test_after_a_kill_the_dry_run_plans_what_the_rerun_does(release_repo, every_process):
    # The interrupted release's tag is still here: a dry run that did not ask the remote
    # would number the next release past it, while the real run pushes it again or finishes it.
    workspace, remote = release_repo
    marker = slow_remote(remote, seconds=2)
    process = start_promote(workspace)
    wait_for(marker.exists, "the push reaching the remote")
    kill_9(process, every_process)
    if not every_process:  # its push lands after it died
        wait_for(lambda: "model-v1" in git(remote, "tag", "--list"), "the orphaned push landing")
    dry = promote(workspace, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "model-v2" not in dry.stdout
    if every_process:  # the push died unlanded: the real run sends the same commit again
        assert (
            "would push the interrupted promote (model-v1, step 'verify') again as the same "
            "commit, which origin does not name yet (origin names main at " in dry.stdout
        )
        assert ", no model-v1), and stop there" in dry.stdout
    else:
        assert (
            "would finish the interrupted promote (model-v1, step 'verify'), which origin holds"
            in dry.stdout
        )
    rerun = promote(workspace)
    assert rerun.returncode == 0, rerun.stderr
    assert ("pushed it to origin" if every_process else "had reached origin") in rerun.stdout
    assert_one_complete_release(workspace, remote)
