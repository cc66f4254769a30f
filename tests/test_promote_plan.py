"""The plan travels with the release: a candidate gated on one Render plan is never promoted
while render.yaml deploys another, and a release says which plan was gated and which deploys.
Real gate verdicts, real git, git-lfs and a bare remote."""

import json

import pytest
import yaml
from clones import git
from release_repos import make_release_repo, promote, refuse
from workspaces import deploy_on, run_stage

pytestmark = pytest.mark.slow


def test_a_candidate_gated_on_starter_is_not_shipped_while_render_yaml_deploys_free(
    checked_workspace, starter_gated_workspace, tmp_path
):
    workspace, remote = make_release_repo(checked_workspace, starter_gated_workspace, tmp_path)
    assert yaml.safe_load(workspace.render_yaml_path.read_text())["services"][0]["plan"] == "free"
    for args in (("--dry-run",), ()):  # the dry run refuses as the real run does
        reason = refuse(workspace, remote, *args)
        assert "what Render would deploy is not what the gate passed" in reason
        assert "render.yaml deploys plan free, not starter" in reason
        assert "render.yaml tells the service CPU_SHARE 0.1, not plan starter's 0.5" in reason
        assert 'set `plan: starter` and CPU_SHARE "0.5"' in reason and "dvc repro" in reason
    assert git(remote, "tag", "--list") == "" and not workspace.release_dir.exists()
    # The summary says it before anyone promotes.
    summary = run_stage("pipeline.summary", workspace, check=False).stdout
    assert "on starter;" in summary
    assert "render.yaml deploys plan free, CPU_SHARE 0.1, 1 worker(s), NOT what the gate" in summary
    # The fix it names: render.yaml deploys starter. The gate judged the service as render.yaml
    # had it, so its verdict no longer speaks for what ships until `dvc repro` runs it again.
    deploy_on(workspace, "starter", 0.5)
    git(workspace.root, "commit", "-qam", "deploy on starter")
    reason = refuse(workspace, remote)
    assert "gate: render.yaml changed since the gate ran; run dvc repro" in reason
    assert git(remote, "tag", "--list") == ""


def test_the_release_records_the_plan_gated_and_the_plan_deployed(release_repo):
    # The fixture's render.yaml deploys the plan its real gate verdict passed (roomy).
    workspace, _ = release_repo
    dry = promote(workspace, "--dry-run")
    assert "gated on plan roomy, the plan render.yaml deploys" in dry.stdout, dry.stderr
    completed = promote(workspace)
    assert completed.returncode == 0, completed.stderr
    assert "Render deploys it on roomy" in completed.stdout
    manifest = json.loads((workspace.release_dir / "manifest.json").read_text())
    ran = {"plan": "roomy", "cpu_share": 2.0, "workers": 1}
    assert manifest["deployment"] == {"gated": ran, "deployed": ran}
    report = (workspace.release_dir / "release.md").read_text()
    assert "Gated on plan roomy; render.yaml deploys it as gated (plan roomy, CPU_SHARE 2" in report
