"""What the post-deploy workflow does once the smoke check has run: open or update one issue with
its report (or close it when the check passes again) and, when the repository opts in, roll the
service back to the previous release when the live model is provably the wrong one.

    python3 -m checks.after_deploy decide --report smoke-report.json --checked-url URL \\
        --service-url URL --render-branch BRANCH --rollback-setting true|false
    python3 -m checks.after_deploy comment --rollback-result success|failure|cancelled|skipped

`decide` reads the smoke check's JSON report (checks/report.py) and the checkout's git tags, and
writes its decision to $GITHUB_OUTPUT; `comment` turns the decision (the DECISION variable) and
what became of the rollback into the text of the issue. A rollback happens only on a wrong
model or golden answers that differ, never on a timeout, an unreachable service or a cold
start.
Standard library only: the issue job installs nothing.
"""

import argparse
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from checks.facts import Facts, checkout_facts
from checks.report import GOLDEN_MISMATCH, OK, WRONG_MODEL

ISSUE_TITLE = "The live service fails its post-deploy check"
ISSUE_LABEL = "post-deploy-check"
ROLLBACK_SETTING = "ROLLBACK_ON_WRONG_MODEL"
# Render may still be deploying a release this young (its build, then up to 15 minutes of
# health checks): the old model answering then is no evidence of a wrong deploy.
DEPLOY_GRACE_SECONDS = 30 * 60
SHA256 = re.compile(r"^[0-9a-f]{64}$")
TAG = re.compile(r"^(?P<prefix>[A-Za-z0-9._/-]*?)(?P<number>[0-9]+)$")

HEADLINES = {
    OK: "passes again",
    WRONG_MODEL: "serves another model than the promoted release",
    GOLDEN_MISMATCH: "serves the promoted model's sha256, but its golden answers differ",
    "not_ready": "answers, but is not ready (the health check's detail says why)",
    "timeout": "gave no answer before the deadline (a cold start past it, or a hung service)",
    "unreachable": "could not be reached (down, DNS or TLS)",
    "service_error": "is healthy, then answered the golden set with an error",
    "malformed_accepted": "takes a malformed request without a 4xx",
    "manifest_error": "was not checked: the release manifest cannot drive the check",
}


@dataclass(frozen=True)
class Decision:
    """What to do: `report` (open or update the issue) or `resolve` (comment, close it), the tag
    to roll back to ('' for none) and why, and the text the issue gets."""

    action: str
    rollback_tag: str
    why: str
    headline: str
    branch: str
    commit: str
    markdown: str
    run_url: str


def code(text: object) -> str:
    """Inline code that nothing in `text` can break out of."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def rollback_plan(outcome: str, report: dict, facts: Facts) -> tuple[str, str]:
    """(the tag to roll back to or '', one sentence saying why or why not)."""
    if outcome not in (WRONG_MODEL, GOLDEN_MISMATCH):
        return "", f"no rollback: {outcome or 'no report'} says nothing about which model is live"
    setting = facts.rollback_setting.strip().lower()
    if setting != "true":
        if setting in ("", "false"):
            return "", f"no rollback: automatic rollback is off ({ROLLBACK_SETTING} is not true)"
        return "", (
            f"no rollback: {ROLLBACK_SETTING} is {code(facts.rollback_setting)}, neither true nor "
            "false; set it to true to roll back automatically"
        )
    if facts.checked_url.rstrip("/") != facts.service_url.rstrip("/"):
        return "", (
            f"no rollback: the check ran against {code(facts.checked_url)}, not SERVICE_URL "
            f"({code(facts.service_url or 'unset')})"
        )
    if not facts.render_branch or facts.branch != facts.render_branch:
        return "", (
            f"no rollback: the check read the release on {code(facts.branch or 'no branch')}, "
            f"and RENDER_BRANCH ({code(facts.render_branch or 'unset')}) does not name it as "
            "the branch Render deploys"
        )
    match = TAG.match(str((report.get("release") or {}).get("tag") or ""))
    if not match:
        return "", "no rollback: the release manifest names no release tag"
    prefix, number = match["prefix"], int(match["number"])
    numbers = sorted(
        int(found["number"])
        for found in map(TAG.match, facts.release_tags)
        if found and found["prefix"] == prefix
    )
    tag = f"{prefix}{number}"
    if numbers and numbers[-1] > number:
        return "", (
            f"no rollback: the branch serves {code(tag)} while {code(f'{prefix}{numbers[-1]}')} "
            "exists, so it already is a rollback; go further back by hand"
        )
    previous = previous_release(tag, facts.release_tags)
    if outcome == WRONG_MODEL and kept_previous(report, facts):
        return "", (
            f"no rollback: the live model is the previous release {code(previous)}; the new "
            "deploy did not go live"
        )
    changed = facts.release_changed_at
    if outcome == WRONG_MODEL and changed and facts.now - changed < DEPLOY_GRACE_SECONDS:
        minutes = (facts.now - changed) / 60
        return "", (
            f"no rollback yet: release/ changed {minutes:.0f} minutes ago and Render may still be "
            f"deploying it; a wrong model counts after {DEPLOY_GRACE_SECONDS // 60} minutes"
        )
    if not previous:
        return "", f"no rollback: {code(tag)} is the first release, there is none before it"
    return previous, f"rolling back from {code(tag)} to the previous release {code(previous)}"


def previous_release(tag: str, tags: tuple[str, ...]) -> str:
    """The highest release tag of `tag`'s series below it; '' when there is none."""
    match = TAG.match(tag)
    if not match:
        return ""
    prefix, number = match["prefix"], int(match["number"])
    earlier = sorted(
        int(found["number"])
        for found in map(TAG.match, tags)
        if found and found["prefix"] == prefix and int(found["number"]) < number
    )
    return f"{prefix}{earlier[-1]}" if earlier else ""


def kept_previous(report: dict, facts: Facts) -> str:
    """The previous release when it is the one live ('' otherwise): Render keeps the deploy
    before a new one that fails its health checks, so the new release never went live."""
    previous = previous_release(
        str((report.get("release") or {}).get("tag") or ""), facts.release_tags
    )
    live = report.get("live_sha256")
    kept = previous and isinstance(live, str) and facts.release_sha256s.get(previous) == live
    return previous if kept else ""


def describe(outcome: str, report: dict | None, facts: Facts) -> str:
    """One line saying what the check found, naming the release and both sha256s it compared."""
    if report is None:
        if not facts.checked_url:
            return "No URL to check: pass one, or set the repository variable SERVICE_URL."
        return f"{code(facts.checked_url)}: the smoke check wrote no readable report; see the run."
    release = report.get("release") or {}
    promoted, live = release.get("sha256"), report.get("live_sha256")
    headline = HEADLINES.get(outcome, f"failed ({code(outcome)})")
    if outcome == WRONG_MODEL and (kept := kept_previous(report, facts)):
        headline = (
            f"did not get the new deploy live: Render kept the previous release {code(kept)} "
            "(see Render's deploy log for why the new one failed)"
        )
    line = f"{code(report.get('url'))} {headline}"
    if release.get("tag"):
        line += f"; promoted release {code(release['tag'])}"
    if isinstance(promoted, str) and SHA256.match(promoted):
        line += f", sha256 {code(promoted)}"
    if outcome == WRONG_MODEL:
        seen = live if isinstance(live, str) and SHA256.match(live) else "not a sha256"
        line += f"; live sha256 {code(seen)}"
    return line + "."


def decide(report: dict | None, facts: Facts) -> Decision:
    """Issue or not, rollback or not and to which tag, and the text of the issue."""
    outcome = str(report.get("outcome")) if report else ""
    tag, why = rollback_plan(outcome, report or {}, facts)
    return Decision(
        action="resolve" if outcome == OK else "report",
        rollback_tag=tag,
        why=why if outcome != OK else "",
        headline=describe(outcome, report, facts),
        branch=facts.branch,
        commit=facts.commit,
        markdown=str(report.get("markdown") or "") if report else "",
        run_url=facts.run_url,
    )


def comment(decision: Decision, rollback_result: str) -> str:
    """The text of the issue: what the check found, what became of the rollback, the report."""
    status = "passes again" if decision.action == "resolve" else "FAILED"
    lines = [f"### Post-deploy check: {status}", "", decision.headline, ""]
    if decision.commit:
        lines.append(f"- release read from {code(decision.branch)} at {code(decision.commit)}")
    if decision.run_url:
        lines.append(f"- run: {decision.run_url}")
    tag = decision.rollback_tag
    if not tag:
        if decision.why:
            lines.append(f"- {decision.why}")
    elif rollback_result == "success":
        lines.append(
            f"- rolled back to {code(tag)}: the rollback commit is pushed to "
            f"{code(decision.branch)}, Render deploys it, and the next check verifies it"
        )
    elif rollback_result == "failure":
        lines.append(
            f"- the rollback to {code(tag)} failed (see the run's rollback job); by hand: "
            f"`python -m pipeline.rollback {tag}`"
        )
    else:
        result = rollback_result or "no result"
        lines.append(f"- the rollback to {code(tag)} did not run ({result})")
    if decision.markdown:
        lines += ["", decision.markdown]
    return "\n".join(lines).rstrip() + "\n"


def read_report(report_path: Path) -> dict | None:
    """The smoke check's report; None when it wrote none (it never ran) or none readable."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def set_outputs(**outputs: str) -> None:
    """Step outputs for the jobs after this one (one line each), when run by GitHub Actions."""
    output_path = os.environ.get("GITHUB_OUTPUT")
    if not output_path:
        return
    with open(output_path, "a", encoding="utf-8") as output:
        for name, value in outputs.items():
            if "\n" in value:
                raise ValueError(f"the output {name} must be one line: {value!r}")
            output.write(f"{name}={value}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m checks.after_deploy")
    commands = parser.add_subparsers(dest="command", required=True)
    decide_parser = commands.add_parser("decide", help="issue, rollback and text from a report")
    decide_parser.add_argument("--report", type=Path, required=True)
    decide_parser.add_argument("--checked-url", default="")
    decide_parser.add_argument("--service-url", default="")
    decide_parser.add_argument("--render-branch", default="")
    decide_parser.add_argument("--rollback-setting", default="")
    decide_parser.add_argument("--release-dir", default="release")
    comment_parser = commands.add_parser("comment", help="the text of the issue ($DECISION)")
    comment_parser.add_argument("--rollback-result", default="")
    comment_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "decide":
        report = read_report(args.report)
        decision = decide(report, checkout_facts(args, args.release_dir))
        print(decision.headline)
        if decision.why:
            print(decision.why)
        set_outputs(
            action=decision.action,
            rollback_tag=decision.rollback_tag,
            branch=decision.branch,
            commit=decision.commit,
            decision=json.dumps(asdict(decision)),
        )
        return 0
    decision = Decision(**json.loads(os.environ["DECISION"]))
    args.out.write_text(comment(decision, args.rollback_result), encoding="utf-8")
    set_outputs(title=ISSUE_TITLE, label=ISSUE_LABEL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
