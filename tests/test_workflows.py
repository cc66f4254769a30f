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


def test_only_the_promote_job_may_write():
    writers = {
        (path.name, job_name)
        for path in WORKFLOWS
        for job_name, job in load(path.name)["jobs"].items()
        if "write" in (job.get("permissions") or {}).values()
    }
    assert writers == {("promote.yml", "promote")}


def test_pipeline_runs_on_changes_to_model_params_pipeline_and_service():
    triggers = load("pipeline.yml")["on"]
    for event in ("push", "pull_request"):
        paths = triggers[event]["paths"]
        for expected in ("params.yaml", "dvc.yaml", "pipeline/**", "service/**"):
            assert expected in paths


def test_post_deploy_runs_after_deploys_on_demand_and_on_a_schedule():
    triggers = load("post-deploy.yml")["on"]
    assert {"deployment_status", "workflow_dispatch", "schedule"} <= set(triggers)
    assert triggers["workflow_dispatch"]["inputs"]["url"]["required"] is True


def test_every_setup_python_caches_pip():
    for path in WORKFLOWS:
        for job in load(path.name)["jobs"].values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/setup-python"):
                    assert step["with"]["cache"] == "pip", path.name
