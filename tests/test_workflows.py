"""The GitHub workflows: actionlint-clean, least permissions, and the triggers users rely on.
tests/test_workflow_steps.py runs their shell steps."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runner import WORKFLOWS, load

from pipeline.inputs.pull import CREDENTIAL_SECRETS


def test_every_workflow_passes_actionlint():
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert actionlint, "actionlint is installed by the test extra"
    completed = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflows_default_to_read_only(path):
    assert load(path.name)["permissions"] == {"contents": "read"}


def test_each_write_permission_belongs_to_the_one_job_that_needs_it():
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
        ("post-deploy.yml", "rollback", "contents"),
        ("post-deploy.yml", "issue", "issues"),
    }


def test_the_post_deploy_jobs_read_and_write_only_what_they_need():
    jobs = load("post-deploy.yml")["jobs"]
    assert "permissions" not in jobs["smoke"]  # the workflow's contents: read
    assert jobs["rollback"]["permissions"] == {"contents": "write"}
    assert jobs["issue"]["permissions"] == {"contents": "read", "issues": "write"}
    # The rollback runs only on a tag the decision named; the issue after the rollback, to say
    # what became of it, and also when the smoke job failed.
    assert jobs["rollback"]["needs"] == "smoke"
    assert "needs.smoke.outputs.rollback_tag != ''" in jobs["rollback"]["if"]
    assert jobs["issue"]["needs"] == ["smoke", "rollback"]
    assert "!cancelled()" in jobs["issue"]["if"] and "!cancelled()" in jobs["rollback"]["if"]


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


@pytest.mark.parametrize("name", ["pipeline.yml", "promote.yml"])
def test_the_users_files_are_pulled_from_dvc_before_the_gates_rerun(name):
    runs = [step.get("run", "") for job in load(name)["jobs"].values() for step in job["steps"]]
    pull_at = next(i for i, run in enumerate(runs) if "python -m pipeline.inputs.pull" in run)
    repro_at = next(i for i, run in enumerate(runs) if "dvc repro" in run)
    assert pull_at < repro_at


@pytest.mark.parametrize("name", ["pipeline.yml", "promote.yml"])
def test_every_dvc_pull_gets_every_secret_the_pull_module_reads(name):
    (pull,) = [
        step
        for job in load(name)["jobs"].values()
        for step in job["steps"]
        if "pipeline.inputs.pull" in step.get("run", "")
    ]
    # One definition: the module says which secret sets what; the workflows only hand them over.
    assert pull["env"] == {secret: f"${{{{ secrets.{secret} }}}}" for secret in CREDENTIAL_SECRETS}


def run_steps():
    for path in WORKFLOWS:
        workflow = load(path.name)
        for job_name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                if "run" in step:
                    yield path.name, workflow, job_name, job, step


def test_every_shell_step_runs_under_bash_with_pipefail():
    for name, workflow, job_name, job, step in run_steps():
        shell = step.get("shell") or (job.get("defaults") or workflow["defaults"])["run"]["shell"]
        # GitHub runs an explicit `shell: bash` as bash -eo pipefail; the default shell has no
        # pipefail.
        assert shell == "bash", (name, job_name, step.get("name"))


def test_no_pipe_feeds_a_reader_that_stops_early():
    # Under pipefail, `cmd | grep -q .` fails at random: grep exits at its first match and
    # cmd dies of SIGPIPE writing the rest.
    early_exit = re.compile(r"\|\s*(grep\s+(-\w*[qm]|--quiet|--max-count)|head\b)")
    assert early_exit.search("dvc remote list | grep -q .")
    assert not early_exit.search("python -m pipeline.summary | tee -a summary.md")
    for name, _, job_name, _, step in run_steps():
        assert not early_exit.search(step["run"]), (name, job_name, step.get("name"))


def test_no_expression_is_pasted_into_a_script():
    # A ${{ }} value is pasted into the script before bash parses it (a branch name, a
    # variable could inject commands): every value reaches a script through env.
    for name, _, job_name, _, step in run_steps():
        assert "${{" not in step["run"], (name, job_name, step.get("name"))


def test_every_shell_step_has_a_name_the_step_tests_find_it_by():
    for name, _, job_name, _, step in run_steps():
        assert step.get("name"), (name, job_name, step["run"][:60])


def test_promote_forces_the_gate_on_the_runner_and_promotes_only_what_passed_there():
    steps = load("promote.yml")["jobs"]["promote"]["steps"]
    runs = [step.get("run", "") for step in steps]
    repro_at = next(i for i, run in enumerate(runs) if "dvc repro\n" in run)
    lines = [line.strip() for line in runs[repro_at].splitlines()]
    assert lines.index("dvc repro") < lines.index("dvc repro --force --single-item gate")
    pull_at = next(i for i, run in enumerate(runs) if "pipeline.inputs.pull" in run)
    promote_at = next(i for i, run in enumerate(runs) if "python -m pipeline.promote" in run)
    assert pull_at < repro_at < promote_at
    promote_lines = [line for line in runs[promote_at].splitlines() if "pipeline.promote" in line]
    assert promote_lines and all("--gated-here" in line for line in promote_lines)


def test_the_smoke_check_after_promote_is_skipped_only_by_a_decision_that_says_why():
    steps = load("promote.yml")["jobs"]["promote"]["steps"]
    decide_at = next(i for i, step in enumerate(steps) if step.get("id") == "live")
    smoke_at = next(i for i, s in enumerate(steps) if "checks.smoke" in s.get("run", ""))
    assert decide_at < smoke_at
    assert steps[smoke_at]["if"] == "steps.live.outputs.check == 'true'"
