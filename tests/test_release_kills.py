"""SIGKILL of promote and rollback at random moments across a whole run (a delay uniform over
the measured length of a full run: inside DVC's status, git's config and commit, the upload,
the push), alone or with every process it started, each followed by one rerun. The rerun ends
with the release complete on both sides, exactly one release commit, no lock file left, and
every message it prints true of what the kill left (tests/kill_trials.py)."""

import json
import shutil

import pytest
from clones import git
from kill_trials import (
    DURATION_FILE,
    PROMOTE_WORDS,
    ROLLBACK_WORDS,
    TEMPLATE_REMOTE,
    Words,
    assert_one_release,
    assert_true_account,
    copy_of,
    finished,
    kill_at_random,
)

pytestmark = pytest.mark.slow
# 80 promote kills and 20 rollback kills, in cases xdist spreads over its workers.
PROMOTE_CASES, ROLLBACK_CASES, TRIALS_PER_CASE = 16, 4, 5


def trials(template, tmp_path, case: int, subject: str, words: Words, *args: str):
    """TRIALS_PER_CASE kills of `args` on fresh copies of `template`, each checked after its
    rerun; the rerun's own length bounds the next delay (the machine's pace right now)."""
    bound = json.loads((template / DURATION_FILE).read_text())
    killed = 0
    for trial in range(TRIALS_PER_CASE):
        copy = tmp_path / f"trial-{trial}"
        workspace = copy_of(template, copy)
        after = kill_at_random(copy, case * TRIALS_PER_CASE + trial, bound, subject, *args)
        killed += after.killed
        rerun, bound = finished(copy, *args)
        assert rerun.returncode == 0, (after, rerun.stdout, rerun.stderr)
        assert_true_account(after, rerun.stdout, words)
        assert_one_release(workspace, copy / TEMPLATE_REMOTE, subject)
        yield workspace
        shutil.rmtree(copy)
    print(f"{killed} of {TRIALS_PER_CASE} runs killed before they ended")


@pytest.mark.parametrize("case", range(PROMOTE_CASES))
def test_a_promote_killed_at_a_random_moment_is_complete_after_one_rerun(
    release_templates, tmp_path, case
):
    for workspace in trials(
        release_templates / "promote",
        tmp_path,
        case,
        "Promote model-v1",
        PROMOTE_WORDS,
    ):
        assert git(workspace.root, "tag", "--list") == "model-v1\n"


@pytest.mark.parametrize("case", range(ROLLBACK_CASES))
def test_a_rollback_killed_at_a_random_moment_is_complete_after_one_rerun(
    release_templates, tmp_path, case
):
    for workspace in trials(
        release_templates / "rollback",
        tmp_path,
        PROMOTE_CASES + case,
        "Roll back the release to model-v1",
        ROLLBACK_WORDS,
        "--rollback",
        "model-v1",
    ):
        root = workspace.root
        assert git(root, "tag", "--list") == "model-v1\nmodel-v2\n"
        assert git(root, "diff", "model-v1", "HEAD", "--stat", "--", "release") == ""
