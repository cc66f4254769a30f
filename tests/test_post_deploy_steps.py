"""The post-deploy workflow's shell steps run as GitHub runs them (tests/workflow_runner.py): the
real smoke check against a stand-in for Render on loopback, the real decision on a real git
history of releases, the real rollback guard, and the issue steps with a stand-in `gh` (GitHub's
API cannot be called here) that records what it was asked."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import pytest
from workflow_runner import find_step, run_step

from pipeline.gate.render_service import free_port

PROMOTED_SHA256 = "2" * 64
OLDER = str(int(time.time()) - 2 * 3600)  # releases made two hours ago: Render is done


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_COMMITTER_DATE": OLDER, "GIT_AUTHOR_DATE": OLDER}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def write_release(repo: Path, tag: str, sha256: str) -> None:
    """release/ as a promotion leaves it (the fields the check reads), committed and tagged."""
    release = repo / "release"
    release.mkdir(exist_ok=True)
    np.savez(release / "golden.npz", X=np.zeros((1, 2), dtype=np.float32))
    manifest = {
        "sha256": sha256,
        "tag": tag,
        "input": {"shape": [2]},
        "output": {"kind": "probability"},
        "labels": ["cat", "dog"],
        "golden": {
            "file": "golden.npz",
            "labels": ["cat"],
            "probabilities": [[0.9, 0.1]],
            "tolerance": 0.001,
        },
    }
    (release / "manifest.json").write_text(json.dumps(manifest))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"Promote {tag}")
    git(repo, "tag", tag)


@pytest.fixture
def releases(tmp_path) -> Path:
    """A checkout of the branch Render deploys: model-v1, then model-v2, both released."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "release@example.com")
    git(repo, "config", "user.name", "Release Engineer")
    write_release(repo, "model-v1", "1" * 64)
    write_release(repo, "model-v2", PROMOTED_SHA256)
    return repo


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def render_stand_in():
    """A stand-in for the service on Render: healthy, serving `sha256`, answering every sample
    with `label` and `probabilities` (cat, dog), and a 400 to anything but raw float32."""
    servers = []

    def serve(sha256: str, label: str, probabilities=(0.9, 0.1)) -> str:
        def app(environ, start_response):
            status = "200 OK"
            if environ["PATH_INFO"] == "/api/health/":
                body = {"status": "ok", "predictor": "ready", "model_sha256": sha256}
            elif environ.get("CONTENT_TYPE") == "application/octet-stream":
                top_k = [
                    {"label": name, "probability": value}
                    for name, value in zip(("cat", "dog"), probabilities, strict=True)
                ]
                body = {"predictions": [{"label": label, "top_k": top_k}]}
            else:
                status, body = "400 Bad Request", {"error": "send float32"}
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]

        server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def smoke_then_decide(checkout: Path, runner: Path, url: str, rollback: str = "true"):
    smoked = run_step(
        find_step("post-deploy.yml", "smoke", "smoke check"),
        checkout,
        runner,
        {"URL": url, "DEADLINE_SECONDS": "1"},  # 300 s on GitHub
    )
    decided = run_step(
        find_step("post-deploy.yml", "smoke", "decide what the result calls for"),
        checkout,
        runner,
        {
            "URL": url,
            "SERVICE_URL": url,
            "RENDER_BRANCH": "main",
            "ROLLBACK_ON_WRONG_MODEL": rollback,
        },
    )
    assert decided.returncode == 0, decided.stdout + decided.stderr
    return smoked, decided


def fake_gh(folder: Path) -> Path:
    """A `gh` that logs each call (one JSON list a line) and lists $GH_OPEN_ISSUE as open."""
    folder.mkdir(parents=True, exist_ok=True)
    gh = folder / "gh"
    gh.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "with open(os.environ['GH_LOG'], 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:3] == ['issue', 'list'] and os.environ.get('GH_OPEN_ISSUE'):\n"
        "    print(os.environ['GH_OPEN_ISSUE'])\n"
    )
    gh.chmod(0o755)
    return folder


def issue_steps(tmp_path: Path, decided, rollback_result: str, open_issue: str = ""):
    """The issue job: its text, then the `gh` calls; (the calls, the comment's text)."""
    runner = tmp_path / "issue-runner"
    text_step = find_step("post-deploy.yml", "issue", "the text of the issue")
    values = {"DECISION": decided.outputs["decision"], "ROLLBACK_RESULT": rollback_result}
    texts = run_step(text_step, tmp_path, runner, values)
    assert texts.returncode == 0, texts.stderr
    log = tmp_path / "gh.log"
    ran = run_step(
        find_step("post-deploy.yml", "issue", "open or update the one post-deploy issue"),
        tmp_path,
        runner,
        {
            "GH_TOKEN": "token",
            "GH_REPO": "owner/repo",
            "ACTION": decided.outputs["action"],
            "TITLE": texts.outputs["title"],
            "LABEL": texts.outputs["label"],
        },
        path_first=fake_gh(tmp_path / "bin"),
        runner_env={"GH_LOG": str(log), "GH_OPEN_ISSUE": open_issue},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return calls, (runner / "comment.md").read_text()


def test_an_unreachable_service_opens_an_issue_and_never_rolls_back(releases, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    smoked, decided = smoke_then_decide(releases, tmp_path / "runner", url)
    assert smoked.returncode == 1
    report = json.loads((releases / "after-deploy" / "smoke-report.json").read_text())
    assert report["outcome"] == "unreachable" and report["release"]["tag"] == "model-v2"
    assert "| health and model sha256 | FAIL |" in smoked.summary
    assert decided.outputs["action"] == "report" and decided.outputs["rollback_tag"] == ""
    calls, text = issue_steps(tmp_path, decided, rollback_result="skipped")
    label = "post-deploy-check"
    assert calls == [
        ["issue", "list", "--label", label, "--state", "open", "--limit", "1", "--json", "number",
         "--jq", ".[].number"],
        ["label", "create", label, "--force", "--color", "B60205", "--description",
         "The live service failed its post-deploy check"],
        ["issue", "create", "--title", "The live service fails its post-deploy check", "--label",
         label, "--body-file", str(tmp_path / "issue-runner" / "comment.md")],
    ]  # fmt: skip
    assert "could not be reached" in text and "no rollback: unreachable says nothing" in text
    assert "| health and model sha256 | FAIL |" in text


def test_golden_answers_that_differ_roll_back_to_the_previous_release(
    releases, tmp_path, render_stand_in
):
    url = render_stand_in(PROMOTED_SHA256, "dog", (0.1, 0.9))  # the golden set says cat
    smoked, decided = smoke_then_decide(releases, tmp_path / "runner", url)
    assert smoked.returncode == 1 and "FAIL golden set: sample 0: dog != cat" in smoked.stdout
    assert decided.outputs["action"] == "report"
    assert decided.outputs["rollback_tag"] == "model-v1"
    assert decided.outputs["branch"] == "main"
    assert decided.outputs["commit"] == git(releases, "rev-parse", "HEAD").strip()
    # An issue is open already: the rollback's outcome is added to it as a comment.
    calls, text = issue_steps(tmp_path, decided, rollback_result="success", open_issue="7")
    assert calls[1:] == [
        ["issue", "comment", "7", "--body-file", str(tmp_path / "issue-runner" / "comment.md")]
    ]
    assert "rolled back to `model-v1`" in text and "golden answers differ" in text


def test_a_wrong_model_is_not_rolled_back_unless_the_repository_opts_in(
    releases, tmp_path, render_stand_in
):
    url = render_stand_in("9" * 64, "cat")
    smoked, decided = smoke_then_decide(releases, tmp_path / "runner", url, rollback="")
    assert smoked.returncode == 1 and f"still serving {'9' * 64}" in smoked.stdout
    report = json.loads((releases / "after-deploy" / "smoke-report.json").read_text())
    assert report["outcome"] == "wrong_model" and report["live_sha256"] == "9" * 64
    assert decided.outputs["rollback_tag"] == ""
    assert "automatic rollback is off" in decided.stdout


def test_the_rollback_step_refuses_a_branch_that_moved_since_the_check(releases, tmp_path):
    checked = git(releases, "rev-parse", "HEAD").strip()
    git(releases, "commit", "-q", "--allow-empty", "-m", "a commit after the check")
    step = find_step("post-deploy.yml", "rollback", "roll back to the previous release")
    ran = run_step(
        step, releases, tmp_path / "runner", {"TAG": "model-v1", "CHECKED_COMMIT": checked}
    )
    assert ran.returncode == 1
    assert f"::error::the branch moved since the check read it ({checked}, now" in ran.stdout
    assert git(releases, "log", "-1", "--format=%s").strip() == "a commit after the check"


def test_a_passing_check_closes_the_open_issue(releases, tmp_path, render_stand_in):
    url = render_stand_in(PROMOTED_SHA256, "cat")
    smoked, decided = smoke_then_decide(releases, tmp_path / "runner", url)
    assert smoked.returncode == 0, smoked.stdout
    assert decided.outputs["action"] == "resolve" and decided.outputs["rollback_tag"] == ""
    calls, text = issue_steps(tmp_path, decided, rollback_result="skipped", open_issue="7")
    body = str(tmp_path / "issue-runner" / "comment.md")
    assert calls[1:] == [["issue", "comment", "7", "--body-file", body], ["issue", "close", "7"]]
    assert text.startswith("### Post-deploy check: passes again")
    calls, _ = issue_steps(tmp_path / "none-open", decided, rollback_result="skipped")
    assert [call[:2] for call in calls] == [["issue", "list"]]


def test_no_url_fails_the_smoke_step_and_the_issue_says_what_to_set(releases, tmp_path):
    smoked, decided = smoke_then_decide(releases, tmp_path / "runner", url="", rollback="true")
    assert smoked.returncode == 1
    assert "::error::no URL: pass one, or set the repository variable SERVICE_URL" in smoked.stdout
    decision = json.loads(decided.outputs["decision"])
    assert decision["headline"].startswith("No URL to check")
    assert decided.outputs["rollback_tag"] == ""
