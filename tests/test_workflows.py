"""The GitHub workflows: actionlint-clean, least permissions, and the triggers users rely on."""

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
