"""What a post-deploy check's result calls for (checks/after_deploy.py): the issue, whether to
roll back and to which tag, and the text of the issue. tests/test_post_deploy_steps.py runs it in
the workflow's steps."""

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from checks.after_deploy import HEADLINES, Facts, comment, decide, read_report
from checks.facts import checkout_facts
from checks.report import (
    GOLDEN_MISMATCH,
    OK,
    OUTCOMES,
    WRONG_MODEL,
    SmokeReport,
)
from pipeline.paths import REPO_ROOT

URL = "https://tflite.onrender.com"
NOW = 1_800_000_000.0
FACTS = Facts(
    checked_url=URL,
    service_url=URL,
    render_branch="main",
    rollback_setting="true",
    branch="main",
    commit="c0ffee",
    release_tags=("model-v1", "model-v2", "model-v3"),
    release_changed_at=NOW - 2 * 3600,
    now=NOW,
    run_url="https://github.com/owner/repo/actions/runs/42",
    release_sha256s={"model-v1": "1" * 64, "model-v2": "2" * 64, "model-v3": "3" * 64},
)


def report(outcome: str, tag: str = "model-v3", live_sha256: str | None = "9" * 64) -> dict:
    """The report as the smoke check writes it, with one failed (or passed) check."""
    smoke = SmokeReport(URL, release={"tag": tag, "sha256": "3" * 64}, live_sha256=live_sha256)
    smoke.record("health and model sha256", outcome == OK, f"saw {outcome}", outcome)
    return smoke.as_json()


def test_every_outcome_has_a_headline():
    assert set(HEADLINES) == set(OUTCOMES)


@pytest.mark.parametrize("outcome", [WRONG_MODEL, GOLDEN_MISMATCH])
def test_a_wrong_model_or_golden_mismatch_rolls_back_to_the_previous_release(outcome):
    decision = decide(report(outcome), FACTS)
    assert decision.action == "report"
    assert decision.rollback_tag == "model-v2"
    assert decision.why == "rolling back from `model-v3` to the previous release `model-v2`"


@pytest.mark.parametrize("outcome", sorted(set(OUTCOMES) - {OK, WRONG_MODEL, GOLDEN_MISMATCH}))
def test_no_other_failure_ever_rolls_back(outcome):
    decision = decide(report(outcome), FACTS)
    assert decision.action == "report" and decision.rollback_tag == ""
    assert decision.why == f"no rollback: {outcome} says nothing about which model is live"


def test_a_missing_report_opens_an_issue_and_never_rolls_back():
    decision = decide(None, FACTS)
    assert (decision.action, decision.rollback_tag) == ("report", "")
    assert "the smoke check wrote no readable report" in decision.headline
    no_url = decide(None, dataclasses.replace(FACTS, checked_url=""))
    assert no_url.headline.startswith("No URL to check: pass one, or set the repository variable")


def test_a_passing_check_resolves_the_issue():
    decision = decide(report(OK, live_sha256="3" * 64), FACTS)
    assert (decision.action, decision.rollback_tag, decision.why) == ("resolve", "", "")
    assert comment(decision, "skipped").startswith("### Post-deploy check: passes again")


@pytest.mark.parametrize(
    "change, why",
    [
        ({"rollback_setting": ""}, "no rollback: automatic rollback is off"),
        ({"rollback_setting": "false"}, "no rollback: automatic rollback is off"),
        ({"rollback_setting": "yes"}, "is `yes`, neither true nor false; set it to true"),
        ({"checked_url": "https://staging.example"}, "ran against `https://staging.example`"),
        ({"render_branch": ""}, "RENDER_BRANCH (`unset`) does not name it"),
        ({"branch": "release-2"}, "the check read the release on `release-2`"),
        ({"release_tags": ("model-v1", "model-v3", "model-v4")}, "it already is a rollback"),
        ({"release_tags": ("model-v3",)}, "`model-v3` is the first release, there is none"),
        ({"release_changed_at": NOW - 600}, "release/ changed 10 minutes ago and Render may"),
    ],
)
def test_a_wrong_model_is_not_rolled_back_when(change, why):
    decision = decide(report(WRONG_MODEL), dataclasses.replace(FACTS, **change))
    assert decision.rollback_tag == "" and decision.action == "report"
    assert why in decision.why


def test_a_young_release_with_different_golden_answers_is_rolled_back():
    # The sha256 matches: Render has deployed it, and it answers wrong.
    young = dataclasses.replace(FACTS, release_changed_at=NOW - 60)
    assert decide(report(GOLDEN_MISMATCH), young).rollback_tag == "model-v2"


def test_the_previous_release_is_the_highest_before_it_of_the_same_series():
    tags = ("model-v1", "model-v10", "model-v9", "other-v8", "model-v11")
    decision = decide(
        report(WRONG_MODEL, tag="model-v11"), dataclasses.replace(FACTS, release_tags=tags)
    )
    assert decision.rollback_tag == "model-v10"
    no_tag = decide(report(WRONG_MODEL, tag=""), FACTS)
    assert no_tag.rollback_tag == "" and "names no release tag" in no_tag.why


@pytest.mark.parametrize(
    "result, says",
    [
        ("success", "rolled back to `model-v2`: the rollback commit is pushed to `main`"),
        ("failure", "failed (see the run's rollback job); by hand: `python -m pipeline.rollback"),
        ("cancelled", "the rollback to `model-v2` did not run (cancelled)"),
    ],
)
def test_the_issue_says_what_became_of_the_rollback(result, says):
    text = comment(decide(report(WRONG_MODEL), FACTS), result)
    assert text.startswith("### Post-deploy check: FAILED\n\n`https://tflite.onrender.com` serves ")
    assert says in text
    assert "live sha256 `" + "9" * 64 + "`" in text and "sha256 `" + "3" * 64 + "`" in text
    assert f"- run: {FACTS.run_url}" in text
    assert "| health and model sha256 | FAIL | saw wrong\\_model |" in text


def test_what_the_live_service_says_cannot_break_out_of_the_issue_text():
    hostile = report(WRONG_MODEL, live_sha256="`](https://evil.example) @everyone")
    text = comment(decide(hostile, dataclasses.replace(FACTS, checked_url=URL)), "skipped")
    assert "evil.example" not in text and "live sha256 `not a sha256`" in text
    odd_url = dataclasses.replace(FACTS, checked_url="https://x`y", service_url="")
    assert "`https://x'y`" in decide(report(WRONG_MODEL), odd_url).why


def test_the_module_needs_nothing_but_the_standard_library():
    # The issue job runs it with the runner's own python3, nothing installed.
    completed = subprocess.run(
        [sys.executable, "-S", "-c", "import checks.after_deploy"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr


def test_a_report_that_is_missing_or_unreadable_counts_as_none(tmp_path):
    assert read_report(tmp_path / "none.json") is None
    (tmp_path / "half.json").write_text('{"outcome": "wro')
    assert read_report(tmp_path / "half.json") is None
    (tmp_path / "list.json").write_text("[]")
    assert read_report(tmp_path / "list.json") is None


def test_a_live_model_that_is_the_previous_release_is_a_failed_deploy_never_rolled_back():
    # Render keeps the previous deploy live when the new one fails its health checks.
    decision = decide(report(WRONG_MODEL, live_sha256="2" * 64), FACTS)
    assert decision.rollback_tag == "" and decision.action == "report"
    assert "the live model is the previous release `model-v2`" in decision.why
    assert (
        "did not get the new deploy live: Render kept the previous release `model-v2` (see "
        "Render's deploy log for why the new one failed)"
    ) in decision.headline
    older = decide(report(WRONG_MODEL, live_sha256="1" * 64), FACTS)  # not the previous: roll back
    assert older.rollback_tag == "model-v2" and "did not get" not in older.headline


def git(repo, *args, date="2026-01-01T00:00:00Z"):
    env = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date, "HOME": str(repo)}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def release_commit(repo, tag, sha256, date):
    (repo / "release").mkdir(exist_ok=True)
    (repo / "release" / "manifest.json").write_text(json.dumps({"tag": tag, "sha256": sha256}))
    git(repo, "add", "-A", date=date)
    git(repo, "commit", "-qm", f"Promote {tag}", date=date)
    git(repo, "tag", tag, date=date)


def test_the_checkout_facts_time_a_merged_release_by_its_merge(tmp_path, monkeypatch):
    # promote on a branch, then `git merge --no-ff` into RENDER_BRANCH much later.
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "deploy")
    for setting in (("user.name", "CI"), ("user.email", "ci@example.com")):
        git(repo, "config", *setting)
    release_commit(repo, "model-v1", "1" * 64, "2026-01-01T00:00:00Z")
    git(repo, "checkout", "-q", "-b", "main")
    release_commit(repo, "model-v2", "2" * 64, "2026-01-02T00:00:00Z")
    git(repo, "checkout", "-q", "deploy")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "main", date="2026-01-05T00:00:00Z")
    monkeypatch.chdir(repo)
    settings = argparse.Namespace(
        checked_url=URL, service_url=URL, render_branch="deploy", rollback_setting="true"
    )
    facts = checkout_facts(settings, "release")
    merged_at = 1_767_571_200.0  # 2026-01-05T00:00:00Z
    assert facts.release_changed_at == merged_at and facts.branch == "deploy"
    assert facts.release_sha256s == {"model-v1": "1" * 64, "model-v2": "2" * 64}
    ten_minutes_after = dataclasses.replace(facts, now=merged_at + 600)
    young = decide(report(WRONG_MODEL, tag="model-v2"), ten_minutes_after)
    assert young.rollback_tag == "" and "release/ changed 10 minutes ago" in young.why
    kept = decide(report(WRONG_MODEL, tag="model-v2", live_sha256="1" * 64), facts)
    assert kept.rollback_tag == "" and "Render kept the previous release `model-v1`" in (
        kept.headline
    )
