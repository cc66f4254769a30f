"""The GitHub workflows: actionlint-clean, least permissions, and the triggers users rely on."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.paths import REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def test_every_workflow_passes_actionlint():
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert actionlint, "actionlint is installed by the test extra"
    completed = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflows_default_to_read_only(path):
    assert load(path.name)["permissions"] == {"contents": "read"}


def test_only_the_promote_job_writes_contents_and_only_the_comment_job_writes_pull_requests():
    writers = {
        (path.name, job_name, scope)
        for path in WORKFLOWS
        for job_name, job in load(path.name)["jobs"].items()
        for scope, access in (job.get("permissions") or {}).items()
        if access == "write"
    }
    assert writers == {
        ("promote.yml", "promote", "contents"),
        ("pipeline.yml", "report-comment", "pull-requests"),
    }


def test_a_pull_request_gets_one_sticky_comment_with_the_release_report():
    jobs = load("pipeline.yml")["jobs"]
    comment = jobs["report-comment"]
    assert comment["needs"] == "gates"
    # It runs after a failed gate too (the report says why), never on a fork's pull request.
    assert "always()" in comment["if"] and "pull_request" in comment["if"]
    assert "head.repo.full_name == github.repository" in comment["if"]
    sticky = next(s for s in comment["steps"] if "sticky-pull-request-comment" in s.get("uses", ""))
    # One header: each push replaces the same comment instead of adding one.
    assert sticky["with"]["header"] == "release-report"
    assert sticky["with"]["path"].endswith("release.md")
    uploaded = [
        s["with"]["path"] for s in jobs["gates"]["steps"] if "upload-artifact" in s.get("uses", "")
    ]
    assert any("reports/release.md" in path for path in uploaded)


def test_pipeline_runs_on_changes_to_model_params_pipeline_and_service():
    triggers = load("pipeline.yml")["on"]
    for event in ("push", "pull_request"):
        paths = triggers[event]["paths"]
        for expected in ("params.yaml", "dvc.yaml", "pipeline/**", "service/**"):
            assert expected in paths


def test_post_deploy_runs_on_demand_and_on_a_schedule_never_waiting_for_render():
    triggers = load("post-deploy.yml")["on"]
    # deployment_status is documented for preview deploys: Render may never send it.
    assert set(triggers) == {"workflow_dispatch", "schedule"}
    assert triggers["workflow_dispatch"]["inputs"]["url"]["required"] is True


def test_promote_takes_a_branch_and_smoke_checks_the_live_service_after_pushing():
    workflow = load("promote.yml")
    branch_input = workflow["on"]["workflow_dispatch"]["inputs"]["branch"]
    assert "Branch" in branch_input["description"]
    steps = workflow["jobs"]["promote"]["steps"]
    checkout = next(
        step for step in steps if str(step.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["ref"] == "${{ inputs.branch }}"
    runs = [step.get("run", "") for step in steps]
    promote_at = next(i for i, run in enumerate(runs) if "python -m pipeline.promote" in run)
    smoke_at = next(i for i, run in enumerate(runs) if "python -m checks.smoke" in run)
    assert smoke_at > promote_at
    assert "--manifest release/manifest.json" in runs[smoke_at]


def test_the_pipeline_does_not_rerun_on_a_release_commit():
    condition = load("pipeline.yml")["jobs"]["gates"]["if"]
    assert "startsWith(github.event.head_commit.message, 'Promote model-v')" in condition
    assert "startsWith(github.event.head_commit.message, 'Roll back the release to')" in condition


def test_every_setup_python_caches_pip():
    for path in WORKFLOWS:
        for job in load(path.name)["jobs"].values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/setup-python"):
                    assert step["with"]["cache"] == "pip", path.name


# promote.yml's pull, its secrets and its forced gate have tests of their own below.
@pytest.mark.parametrize("name", ["pipeline.yml"])
def test_the_users_files_are_pulled_from_dvc_before_the_gates_rerun(name):
    runs = [step.get("run", "") for job in load(name)["jobs"].values() for step in job["steps"]]
    pull_at = next(i for i, run in enumerate(runs) if "dvc pull" in run)
    repro_at = next(i for i, run in enumerate(runs) if "dvc repro" in run)
    assert pull_at < repro_at


def promote_step(name_part: str) -> dict:
    steps = load("promote.yml")["jobs"]["promote"]["steps"]
    return next(step for step in steps if name_part in step.get("name", ""))


def run_step(step: dict, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """A step's script run as GitHub runs it with `shell: bash` (bash -e -o pipefail)."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_piped_step_keeps_the_first_commands_failure():
    for path in WORKFLOWS:
        workflow = load(path.name)
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                script = step.get("run", "")
                if not re.search(r"(?<![|])\|(?![|])", script):
                    continue
                shell = step.get("shell") or (job.get("defaults") or workflow.get("defaults") or {})
                shell = shell if isinstance(shell, str) else shell.get("run", {}).get("shell")
                # GitHub runs an explicit `shell: bash` as bash -eo pipefail.
                assert shell == "bash" or "set -o pipefail" in script, (path.name, step)
    assert load("promote.yml")["defaults"]["run"]["shell"] == "bash"
    assert "set -o pipefail" in promote_step("verdicts")["run"]
    # The behaviour itself: a failing first command fails the piped step.
    failing = {"run": "false | tee /dev/null"}
    assert run_step(failing, REPO_ROOT, {}).returncode != 0


def test_promote_forces_the_gate_on_the_runner_and_promotes_only_what_passed_there():
    steps = load("promote.yml")["jobs"]["promote"]["steps"]
    runs = [step.get("run", "") for step in steps]
    repro_at = next(i for i, run in enumerate(runs) if "dvc repro\n" in run)
    lines = [line.strip() for line in runs[repro_at].splitlines()]
    assert lines.index("dvc repro") < lines.index("dvc repro --force --single-item gate")
    pull_at = next(i for i, run in enumerate(runs) if "dvc pull" in run)
    promote_at = next(i for i, run in enumerate(runs) if "python -m pipeline.promote" in run)
    assert pull_at < repro_at < promote_at
    promote_lines = [line for line in runs[promote_at].splitlines() if "pipeline.promote" in line]
    assert promote_lines and all("--gated-here" in line for line in promote_lines)


def test_promote_maps_the_dvc_remotes_credentials_from_secrets():
    env = promote_step("DVC-tracked inputs")["env"]
    assert env["AWS_ACCESS_KEY_ID"] == "${{ secrets.DVC_AWS_ACCESS_KEY_ID }}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.DVC_AWS_SECRET_ACCESS_KEY }}"
    assert all(value.startswith("${{ secrets.DVC_") for value in env.values())


def test_the_pull_step_pulls_a_users_dvc_tracked_inputs_and_needs_no_remote(tmp_path):
    step = promote_step("DVC-tracked inputs")
    dvc_env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    project, store = tmp_path / "project", tmp_path / "store"
    project.mkdir()

    def sh(*command: str) -> None:
        subprocess.run(
            command, cwd=project, env={**os.environ, **dvc_env}, check=True, capture_output=True
        )

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    alone = run_step(step, project, dvc_env)
    assert alone.returncode == 0, alone.stderr
    assert "no DVC remote configured" in alone.stdout
    (project / "model").mkdir()
    (project / "model" / "model.keras").write_bytes(b"weights")
    sh("dvc", "add", "-q", "model")
    sh("dvc", "remote", "add", "-d", "store", str(store))
    sh("dvc", "push", "-q")
    shutil.rmtree(project / "model")
    shutil.rmtree(project / ".dvc" / "cache")
    pulled = run_step(step, project, dvc_env)
    assert pulled.returncode == 0, pulled.stderr
    assert (project / "model" / "model.keras").read_bytes() == b"weights"


@pytest.mark.parametrize(
    "render_branch, expected",
    [
        ("", "cannot tell whether Render deploys release-2"),
        ("main", "the release is on release-2 but Render deploys main"),
    ],
)
def test_the_smoke_step_says_why_it_cannot_wait_for_another_branch(
    tmp_path, render_branch, expected
):
    step = promote_step("smoke-check")
    env = {"URL": "https://example.invalid", "RENDER_BRANCH": render_branch, "BRANCH": "release-2"}
    completed = run_step(step, tmp_path, env)
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout


def test_the_smoke_step_waits_for_the_release_on_renders_branch(tmp_path):
    # Render cannot run here: a stand-in for the venv's python records how the smoke was asked.
    fake_python = tmp_path / ".venv" / "bin" / "python"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text('#!/bin/sh\necho "$@" > asked.txt\nexit 3\n')
    fake_python.chmod(0o755)
    env = {"URL": "https://service.example", "RENDER_BRANCH": "main", "BRANCH": "main"}
    completed = run_step(promote_step("smoke-check"), tmp_path, env)
    assert completed.returncode == 3  # the smoke's own failure fails the step
    asked = (tmp_path / "asked.txt").read_text()
    assert "-m checks.smoke --url https://service.example --manifest release/manifest.json" in asked
