"""Every shell step of every workflow, run here as GitHub runs it (tests/workflow_runner.py) on a
scratch project, or named with the reason it cannot run here."""

import configparser
import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from shared_builds import built_once
from workflow_runner import VENV_BIN, WORKFLOWS, find_step, load, run_step

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV

# Steps that cannot run here, and why; every other `run:` step is run by a test below.
NOT_RUN_HERE = {
    ("pipeline.yml", "gates", "install as the README does"): "make install on a fresh runner",
    ("promote.yml", "promote", "install as the README does"): "make install on a fresh runner",
    ("post-deploy.yml", "rollback", "install as the README does"): "make install on a runner",
    ("post-deploy.yml", "smoke", "install the check's needs only"): "pip install on the runner",
    ("tests.yml", "test", "make test"): "the whole suite, this file included",
}
# Steps that are `uses:` actions run only on GitHub's runners (checkout, setup-python, artifacts).
RUN_HERE = {
    ("pipeline.yml", "gates", "the user's files from the DVC remote"),
    ("pipeline.yml", "gates", "dvc repro (convert, parity, gate)"),
    ("pipeline.yml", "gates", "release report in the step summary"),
    ("promote.yml", "promote", "the user's DVC-tracked inputs from the DVC remote"),
    ("promote.yml", "promote", "re-run every stage, then force the gate on this runner"),
    ("promote.yml", "promote", "verdicts for this candidate and these inputs"),
    ("promote.yml", "promote", "promote what passed on this runner"),
    ("promote.yml", "promote", "can this run check the live service?"),
    ("promote.yml", "promote", "wait until the live service serves the release"),
    ("post-deploy.yml", "smoke", "smoke check"),
    ("post-deploy.yml", "smoke", "decide what the result calls for"),
    ("post-deploy.yml", "rollback", "the user's DVC-tracked inputs from the DVC remote"),
    ("post-deploy.yml", "rollback", "roll back to the previous release"),
    ("post-deploy.yml", "issue", "the text of the issue"),
    ("post-deploy.yml", "issue", "open or update the one post-deploy issue"),
    ("tests.yml", "all-green", "every required job passed"),
}
FILE_BYTES = b"the user's model, pushed to the DVC remote"


def test_every_shell_step_is_run_here_or_named_with_the_reason_it_cannot_be():
    shell_steps = {
        (path.name, job_name, step["name"])
        for path in WORKFLOWS
        for job_name, job in load(path.name)["jobs"].items()
        for step in job["steps"]
        if "run" in step
    }
    named = {(w, j, s) for w, j, s in [*NOT_RUN_HERE, *RUN_HERE]}
    matched = {
        key
        for key in shell_steps
        for workflow, job, part in named
        if key[:2] == (workflow, job) and key[2].startswith(part)
    }
    assert matched == shell_steps, f"neither run here nor named: {shell_steps - matched}"
    assert len(named) == len(shell_steps), "a named step no longer exists"


def sh(cwd: Path, *command: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        command, cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


# DVC's own API in one process (each `dvc` command costs a second of start-up).
PUSH_SCRIPT = """
import sys
from dvc.repo import Repo
remotes = sys.argv[1:]
repo = Repo.init(".")
repo.add("model")
with repo.config.edit() as config:
    for index, url in enumerate(remotes):
        config["remote"][f"store{index}"] = {"url": url}
    # The last one is the default: a pull from the first listed would find nothing.
    config["core"]["remote"] = f"store{len(remotes) - 1}"
repo = Repo(".")
assert repo.push() == 2  # the folder listing and its one file
"""


def scratch_project(root: Path, remotes: int) -> Path:
    """A git + DVC project like a user's after `pipeline.init`: model/ tracked by DVC and pushed
    to the default of `remotes` local-folder remotes (the others stay empty), then removed here
    with DVC's cache, as a fresh clone has it; two stages read it (convert, gate)."""
    project = root / "project"
    project.mkdir(parents=True)
    sh(project, "git", "init", "-q", "-b", "main")
    sh(project, "git", "config", "user.email", "ci@example.com")
    sh(project, "git", "config", "user.name", "CI")
    (project / "model").mkdir()
    (project / "model" / "model.keras").write_bytes(FILE_BYTES)
    stores = [str(root / f"store{index}") for index in range(remotes)]
    sh(project, str(VENV_BIN / "python"), "-c", PUSH_SCRIPT, *stores)
    stages = {
        "convert": {"cmd": "wc -c < model/model.keras > size.txt", "deps": ["model"]},
        "gate": {"cmd": "cp size.txt gate.txt", "deps": ["size.txt"], "outs": ["gate.txt"]},
    }
    stages["convert"]["outs"] = ["size.txt"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    shutil.copy(REPO_ROOT / "params.yaml", project / "params.yaml")
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "the user's project")
    shutil.rmtree(project / "model")
    shutil.rmtree(project / ".dvc" / "cache")
    # The runner's `make install` made .venv in the checkout; here it is the suite's own.
    (project / ".venv").symlink_to(VENV_BIN.parent)
    return project


@pytest.fixture(scope="session", params=[2, 3], ids=lambda n: f"{n}-remotes")
def pushed_project(request, tmp_path_factory) -> Path:
    """scratch_project with 2 and 3 remotes, each built once per run."""
    build = functools.partial(scratch_project, remotes=request.param)
    return built_once(tmp_path_factory, f"remotes{request.param}", build) / "project"


@pytest.fixture
def project(pushed_project, tmp_path) -> Path:
    """A copy of pushed_project for one test (its remotes are shared: pulls only read them)."""
    copy = tmp_path / "project"
    shutil.copytree(pushed_project, copy, symlinks=True)
    return copy


@pytest.fixture
def git_project(tmp_path) -> Path:
    """A committed project with the repository's params.yaml and nothing built: what the
    report, verdicts and promote steps find before any stage ran."""
    project = tmp_path / "project"
    project.mkdir()
    sh(project, "git", "init", "-q", "-b", "main")
    sh(project, "git", "config", "user.email", "ci@example.com")
    sh(project, "git", "config", "user.name", "CI")
    shutil.copy(REPO_ROOT / "params.yaml", project / "params.yaml")
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "the project")
    (project / ".venv").symlink_to(VENV_BIN.parent)
    return project


def runner_env(project: Path) -> dict[str, str]:
    # On a runner the checkout is the installed project's root; here the project is elsewhere.
    return {WORKSPACE_ENV: str(project)}


PULL_STEPS = [
    ("pipeline.yml", "gates", "the user's files from the DVC remote", "dvc repro (convert"),
    ("promote.yml", "promote", "DVC-tracked inputs", "re-run every stage"),
    ("post-deploy.yml", "rollback", "DVC-tracked inputs", None),  # pipeline.rollback reads it
]


@pytest.mark.parametrize(
    "workflow, job, pull_name, repro_name", PULL_STEPS, ids=["pipeline", "promote", "rollback"]
)
def test_the_pull_step_pulls_from_the_default_remote_then_repro_builds_on_it(
    project, tmp_path, workflow, job, pull_name, repro_name
):
    step = find_step(workflow, job, pull_name)
    if job != "gates":  # the same secrets, under the same names, as promote's
        assert step["env"] == find_step("promote.yml", "promote", pull_name)["env"]
    secrets = {name: "" for name in step["env"]}  # none set
    pulled = run_step(step, project, tmp_path / "runner", secrets, runner_env=runner_env(project))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (project / "model" / "model.keras").read_bytes() == FILE_BYTES
    config = configparser.ConfigParser()
    config.read(project / ".dvc" / "config")
    assert f"pulling from the DVC remote '{config['core']['remote']}'" in pulled.stdout
    if repro_name:
        built = run_step(find_step(workflow, job, repro_name), project, tmp_path / "runner")
        assert built.returncode == 0, built.stdout + built.stderr
        assert (project / "gate.txt").read_text().strip() == str(len(FILE_BYTES))


def test_the_pull_step_says_so_when_there_is_no_dvc_remote(tmp_path):
    project = tmp_path / "demo"
    project.mkdir()
    sh(project, "git", "init", "-q")
    sh(project, "dvc", "init", "-q")
    (project / ".venv").symlink_to(VENV_BIN.parent)
    step = find_step("promote.yml", "promote", "DVC-tracked inputs")
    alone = run_step(
        step,
        project,
        tmp_path / "runner",
        {name: "" for name in step["env"]},
        runner_env=runner_env(project),
    )
    assert alone.returncode == 0, alone.stderr
    assert "no DVC remote configured: nothing to pull" in alone.stdout


@pytest.mark.parametrize("event", ["pull_request", "push"])
def test_the_release_report_step_writes_the_report_against_the_base(git_project, tmp_path, event):
    origin = tmp_path / "origin.git"
    sh(tmp_path, "git", "init", "-q", "--bare", str(origin))
    sh(git_project, "git", "remote", "add", "origin", str(origin))
    sh(git_project, "git", "push", "-q", "origin", "main")
    before = sh(git_project, "git", "rev-parse", "HEAD").strip()
    sh(git_project, "git", "commit", "-q", "--allow-empty", "-m", "a change")
    step = find_step("pipeline.yml", "gates", "release report in the step summary")
    values = {"EVENT": event, "BASE_REF": "main", "BEFORE": before}
    ran = run_step(
        step, git_project, tmp_path / "runner", values, runner_env=runner_env(git_project)
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.summary == (git_project / "reports" / "release.md").read_text()
    assert ran.summary.startswith("#")


def test_the_verdicts_step_fails_when_the_summary_does_and_still_shows_it(git_project, tmp_path):
    # `python -m pipeline.summary | tee -a` under pipefail: summary's exit code is the step's.
    step = find_step("promote.yml", "promote", "verdicts for this candidate")
    ran = run_step(step, git_project, tmp_path / "runner", runner_env=runner_env(git_project))
    assert ran.returncode == 1
    assert "gate     not run  no verdict at reports/gate.json" in ran.summary


@pytest.mark.parametrize("dry_run", ["true", "false"])
def test_the_promote_step_fails_with_promotes_refusal(git_project, tmp_path, dry_run):
    step = find_step("promote.yml", "promote", "promote what passed on this runner")
    ran = run_step(
        step,
        git_project,
        tmp_path / "runner",
        {"DRY_RUN": dry_run},
        runner_env=runner_env(git_project),
    )
    assert ran.returncode == 1
    assert "promotion refused: there is no candidate" in ran.stderr + ran.stdout
    assert "github-actions[bot]" in sh(git_project, "git", "config", "user.name")


LIVE = "can this run check the live service?"


@pytest.mark.parametrize(
    "values, level, reason",
    [
        ({"DRY_RUN": "true"}, "notice", "a dry run pushes no release"),
        ({"URL": ""}, "warning", "no repository variable SERVICE_URL names the live service"),
        ({"RENDER_BRANCH": ""}, "warning", "cannot tell whether Render deploys release-2; set"),
        ({"RENDER_BRANCH": "main"}, "notice", "the release is on release-2 but Render deploys"),
    ],
)
def test_the_live_check_is_skipped_only_with_its_reason_shown(tmp_path, values, level, reason):
    given = {
        "URL": "https://service.example",
        "RENDER_BRANCH": "release-2",
        "BRANCH": "release-2",
        "DRY_RUN": "false",
        **values,
    }
    ran = run_step(find_step("promote.yml", "promote", LIVE), tmp_path, tmp_path / "runner", given)
    assert ran.returncode == 0, ran.stderr
    assert ran.outputs == {"check": "false"}
    assert ran.stdout.startswith(f"::{level} title=live service not checked::")
    assert reason in ran.stdout
    assert ran.summary.startswith("**The live service was not checked:**") and reason in ran.summary


def test_the_live_check_runs_when_render_deploys_the_promoted_branch(tmp_path):
    given = {
        "URL": "https://s.example",
        "RENDER_BRANCH": "main",
        "BRANCH": "main",
        "DRY_RUN": "false",
    }
    ran = run_step(find_step("promote.yml", "promote", LIVE), tmp_path, tmp_path / "runner", given)
    assert ran.returncode == 0 and ran.outputs == {"check": "true"} and ran.summary == ""


def test_the_smoke_step_after_promote_waits_for_the_release_and_fails_with_the_check(tmp_path):
    # Render cannot run here: a stand-in for the venv's python records how the check was asked.
    fake_python = tmp_path / ".venv" / "bin" / "python"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text('#!/bin/sh\necho "$@" > asked.txt\nexit 3\n')
    fake_python.chmod(0o755)
    step = find_step("promote.yml", "promote", "wait until the live service serves the release")
    ran = run_step(step, tmp_path, tmp_path / "runner", {"URL": "https://service.example"})
    assert ran.returncode == 3  # the check's own failure fails the step
    asked = (tmp_path / "asked.txt").read_text()
    assert "-m checks.smoke --url https://service.example --manifest release/manifest.json" in asked


@pytest.mark.parametrize("result, code", [("success", 0), ("failure", 1), ("cancelled", 1)])
def test_the_all_green_step_passes_only_when_the_tests_did(tmp_path, result, code):
    step = find_step("tests.yml", "all-green", "every required job passed")
    assert run_step(step, tmp_path, tmp_path / "runner", {"TESTS": result}).returncode == code
