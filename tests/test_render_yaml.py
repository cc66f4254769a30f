"""render.yaml and the service's requirements: what Render builds, starts and checks."""

import importlib.metadata
import re
import tomllib

import pytest
import yaml

from pipeline.gate.render_service import RenderWebService, RenderYamlError
from pipeline.paths import REPO_ROOT
from service.lfs_pull import DEFAULT_RECORD, PULLED

BLUEPRINT = yaml.safe_load((REPO_ROOT / "render.yaml").read_text())
REQUIREMENTS = [
    line.strip()
    for line in (REPO_ROOT / "service" / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def web_service() -> dict:
    (service,) = [s for s in BLUEPRINT["services"] if s["type"] == "web"]
    return service


def env_vars() -> dict:
    return {item["key"]: item["value"] for item in web_service()["envVars"]}


def test_one_free_python_web_service_with_a_health_check():
    service = web_service()
    assert service["runtime"] == "python" and service["plan"] == "free"
    assert service["healthCheckPath"] == "/api/health/"


def test_python_version_is_pinned_to_a_patch_release():
    assert re.fullmatch(r"3\.11\.\d+", env_vars()["PYTHON_VERSION"])


def test_model_dir_points_at_the_promoted_bundle():
    assert env_vars()["MODEL_DIR"] == "release"


def test_build_installs_only_the_service_requirements_and_fetches_lfs_objects():
    build = web_service()["buildCommand"]
    assert build.startswith("pip install --no-cache-dir -r service/requirements.txt && ")
    assert "git lfs pull" in build
    assert "pyproject" not in build and ".[" not in build
    # A failed fetch is said in the build log; the service then reports the pointer itself,
    # from the pull's record where it reads it by default.
    assert "|| echo" in build and "WARNING" in build
    assert f'echo "{PULLED}"' in build and f"| tee {DEFAULT_RECORD}" in build
    assert "LFS_PULL_LOG" not in env_vars()


def test_start_command_runs_gunicorn_on_render_port_with_explicit_workers():
    start = web_service()["startCommand"]
    assert start.startswith("gunicorn service.app:app")
    assert "--bind 0.0.0.0:$PORT" in start
    # gevent: slow and idle clients hold greenlets, not the few threads health needs.
    for option in (
        "--workers",
        "--worker-class service.worker.JsonErrorGeventWorker",
        "--worker-connections",
        "--timeout",
    ):
        assert option in start
    assert "--preload" not in start  # each worker must build its interpreter after fork
    # The gate runs this exact string with `bash -c`: one command, no pipes, lists or subshells.
    assert not re.search(r"[;|&`<>]|\$\(", start)


def test_every_service_requirement_is_pinned_and_none_is_heavy():
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.]+", line) for line in REQUIREMENTS)
    names = {line.split("==")[0].lower() for line in REQUIREMENTS}
    assert names.isdisjoint({"tensorflow", "tensorflow-cpu", "keras", "scikit-learn", "joblib"})


def test_the_service_extra_in_pyproject_matches_the_requirements():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["service"] == REQUIREMENTS[:5]


def test_the_tests_run_the_service_versions_that_ship():
    for pin in REQUIREMENTS[:5]:
        name, version = pin.split("==")
        assert importlib.metadata.version(name) == version, pin


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "does not exist; the gate starts the service the way render.yaml does"),
        ("services: [unclosed\n", "cannot be read as YAML: "),
        ("databases: []\n", "has no `services:` list"),
        ("services:\n  - web\n", "lists 'web' under `services:`; each entry must be a mapping"),
        ("services:\n  - type: web\n", "must define exactly one web service with a startCommand"),
        (
            "services:\n  - type: web\n    startCommand: gunicorn\n    envVars: [PORT]\n",
            "the web service's envVars must be a list of mappings",
        ),
    ],
    ids=["missing", "not yaml", "no services", "not a mapping", "no start", "bad envVars"],
)
def test_a_render_yaml_the_gate_cannot_read_is_refused_naming_the_problem(tmp_path, text, problem):
    path = tmp_path / "render.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(RenderYamlError) as refused:
        RenderWebService.read(path)
    assert str(refused.value).startswith(str(path))
    assert problem in str(refused.value)


def test_the_projects_render_yaml_reads_as_one_web_service():
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    assert render.start_command == web_service()["startCommand"] and render.env == env_vars()
