"""What Render deploys against what the gate ran, read from render.yaml as Render reads it."""

import shutil
from pathlib import Path

import pytest
import release_history as history
import yaml

from pipeline.paths import REPO_ROOT
from pipeline.release.deployment import (
    deployed,
    deployment_record,
    differences,
    require_gated_deployment,
)
from pipeline.release.errors import PromotionRefused

GATE_ON_FREE = {
    "plan": {"name": "free", "memory_mb": 512, "cpu_share": 0.1, "price_usd_month": 0},
    "render_env": {"WEB_CONCURRENCY": "1", "CPU_SHARE": "0.1"},
    "figures": {"workers": 1},
}


def render_yaml(tmp_path: Path, plan="free", start_command=None, **env: str | None) -> Path:
    """The repository's render.yaml with its plan, start command or envVars changed."""
    blueprint = yaml.safe_load((REPO_ROOT / "render.yaml").read_text())
    (web,) = blueprint["services"]
    if plan is None:
        del web["plan"]
    else:
        web["plan"] = plan
    if start_command:
        web["startCommand"] = start_command
    variables = {item["key"]: item["value"] for item in web["envVars"]} | env
    web["envVars"] = [{"key": k, "value": v} for k, v in variables.items() if v is not None]
    path = tmp_path / "render.yaml"
    path.write_text(yaml.safe_dump(blueprint, sort_keys=False))
    return path


def test_the_repository_deploys_what_its_gate_runs_on_free(tmp_path):
    assert deployed(REPO_ROOT / "render.yaml").in_words() == "plan free, CPU_SHARE 0.1, 1 worker(s)"
    assert differences(GATE_ON_FREE, {}, REPO_ROOT / "render.yaml") == []


def test_a_plan_render_yaml_does_not_set_is_refused(tmp_path):
    with pytest.raises(PromotionRefused, match=r"render.yaml deploys plan \(none set\), not free"):
        require_gated_deployment(GATE_ON_FREE, {}, render_yaml(tmp_path, plan=None))


def test_workers_the_gate_did_not_run_are_refused(tmp_path):
    # gate.service_env ran one worker; render.yaml would start two.
    gate = {**GATE_ON_FREE, "render_env": {"WEB_CONCURRENCY": "2", "CPU_SHARE": "0.1"}}
    path = render_yaml(tmp_path, WEB_CONCURRENCY="2")
    found = differences(gate, {"WEB_CONCURRENCY": "1"}, path)
    assert found == ["render.yaml runs 2 worker(s), the gate ran 1"]


def test_a_worker_count_left_to_the_host_is_refused(tmp_path):
    found = differences(GATE_ON_FREE, {}, render_yaml(tmp_path, WEB_CONCURRENCY=None))
    assert found == [
        "render.yaml leaves the worker count to the host (set WEB_CONCURRENCY in its envVars)"
    ]


def test_a_literal_worker_count_in_the_start_command_is_read(tmp_path):
    start = "gunicorn service.app:app --bind 0.0.0.0:$PORT --workers 3"
    assert deployed(render_yaml(tmp_path, start_command=start)).workers == 3


def test_a_cpu_share_the_gate_gave_the_service_through_service_env_is_refused(tmp_path):
    found = differences(GATE_ON_FREE, {"CPU_SHARE": "0.5"}, REPO_ROOT / "render.yaml")
    assert found == [
        "the gate ran the service with CPU_SHARE 0.5 (gate.service_env), render.yaml deploys "
        "it with 0.1"
    ]


def test_a_cpu_share_that_is_not_a_number_is_named_not_a_traceback(tmp_path):
    found = differences(GATE_ON_FREE, {}, render_yaml(tmp_path, CPU_SHARE="a tenth"))
    assert "render.yaml tells the service CPU_SHARE (not a number), not plan free's 0.1" in found


def test_the_manifest_records_both_sides():
    record = deployment_record(GATE_ON_FREE, {}, REPO_ROOT / "render.yaml")
    ran = {"plan": "free", "cpu_share": 0.1, "workers": 1}
    assert record == {"gated": ran, "deployed": ran}


def test_a_rollback_to_a_release_gated_on_another_plan_is_refused_naming_both(tmp_path):
    root, bare, _ = history.new_project(tmp_path)
    shutil.copy(REPO_ROOT / "render.yaml", root / "render.yaml")
    gated_on_free = deployment_record(GATE_ON_FREE, {}, root / "render.yaml")
    names = history.write_inputs(root / "model", "A")
    history.release(root, "model-v1", "model", names, deployment=gated_on_free)
    # render.yaml moves to starter: model-v1's gate never ran there.
    shutil.copy(render_yaml(tmp_path, plan="starter", CPU_SHARE="0.5"), root / "render.yaml")
    history.git(root, "commit", "-qam", "deploy on starter")
    history.git(root, "push", "-q", "--no-verify", "origin", "main")
    before = (history.git(root, "rev-parse", "HEAD"), history.git(bare, "show-ref"))

    for args in (["--dry-run"], []):
        refused = history.rollback(root, "model-v1", *args)
        assert refused.returncode == 1, refused.stdout
        assert (
            "rollback refused: what Render would deploy is not what model-v1's gate passed: "
            "render.yaml deploys plan starter, not free; render.yaml tells the service "
            "CPU_SHARE 0.5, not plan free's 0.1;"
        ) in refused.stderr
        assert (
            "(gate: plan free, CPU_SHARE 0.1, 1 worker(s); render.yaml: plan starter, "
            "CPU_SHARE 0.5, 1 worker(s))"
        ) in refused.stderr
        assert "or roll back to a release gated on plan starter" in refused.stderr
        assert (history.git(root, "rev-parse", "HEAD"), history.git(bare, "show-ref")) == before
        assert history.git(root, "status", "--porcelain") == ""
