"""CI's pull of the user's DVC inputs (pipeline.inputs.pull): which remote, which storage plugin,
which credentials; tests/test_workflow_steps.py runs it as the workflows do."""

import os
import stat
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipeline.inputs.pull import (
    CREDENTIAL_SECRETS,
    SCHEME_EXTRAS,
    Remote,
    RemoteSetupError,
    chosen_remote,
    plugin_requirement,
    remote_settings,
    write_local_settings,
)
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV


def config(default=None, **remotes) -> dict:
    return {"core": {"remote": default} if default else {}, "remote": remotes}


def test_the_remote_is_the_default_or_the_only_one():
    assert chosen_remote(config()) is None
    assert chosen_remote(config(only={"url": "s3://bucket/x"})) == Remote(
        "only", "s3://bucket/x", "s3"
    )
    several = config("b", a={"url": "/a"}, b={"url": "gdrive://folder"}, c={"url": "/c"})
    assert chosen_remote(several) == Remote("b", "gdrive://folder", "gdrive")


def test_several_remotes_without_a_default_are_refused_naming_the_fix():
    with pytest.raises(RemoteSetupError, match=r"3 DVC remotes \(a, b, c\) and no default: run "):
        chosen_remote(config(a={"url": "/a"}, b={"url": "/b"}, c={"url": "/c"}))
    with pytest.raises(RemoteSetupError, match="the default DVC remote 'gone' is not configured"):
        chosen_remote(config("gone", a={"url": "/a"}))


def test_a_remote_built_on_another_takes_its_type():
    remotes = config("sub", base={"url": "s3://bucket/root/"}, sub={"url": "remote://base/sub"})
    assert chosen_remote(remotes) == Remote("sub", "s3://bucket/root/sub", "s3")
    with pytest.raises(RemoteSetupError, match="names no usable remote 'loop'"):
        chosen_remote(config("loop", loop={"url": "remote://loop/x"}))


@pytest.mark.parametrize("scheme", sorted(SCHEME_EXTRAS))
def test_each_remote_type_gets_its_pinned_plugin_within_what_dvc_declares(scheme):
    requirement = Requirement(plugin_requirement(scheme))
    (pinned,) = requirement.specifier
    assert pinned.operator == "=="
    # dvc's own extra for the same storage (`dvc[s3]`) says which plugin versions it works with.
    declared = [
        Requirement(line)
        for line in metadata.requires("dvc")
        if Requirement(line).name == requirement.name
        and Requirement(line).marker.evaluate({"extra": SCHEME_EXTRAS[scheme]})
    ]
    assert declared, f"dvc {metadata.version('dvc')} has no extra for {requirement.name}"
    assert all(pinned.version in found.specifier for found in declared)


def test_local_folders_and_http_need_no_plugin_and_unknown_types_are_refused():
    assert plugin_requirement("") == plugin_requirement("https") == ""
    with pytest.raises(RemoteSetupError, match="a hdfs:// remote needs a DVC plugin this project"):
        plugin_requirement("hdfs")


def test_every_remote_type_and_secret_the_docs_promise_is_served():
    releasing = (REPO_ROOT / "docs" / "releasing.md").read_text(encoding="utf-8")
    for secret in CREDENTIAL_SECRETS:
        assert f"`{secret}`" in releasing
    assert {"s3", "azure", "gs", "gdrive", "ssh", "webdav"} <= set(SCHEME_EXTRAS.values())


def secrets(**values: str) -> dict[str, str]:
    return {name: "" for name in CREDENTIAL_SECRETS} | values


def test_only_the_secrets_a_remote_type_reads_are_written(tmp_path):
    s3 = Remote("store", "s3://bucket/x", "s3")
    env = secrets(
        DVC_AWS_ACCESS_KEY_ID="AKIA1",
        DVC_AWS_SECRET_ACCESS_KEY="shh",
        DVC_REMOTE_PASSWORD="not for s3",
    )
    assert remote_settings(s3, {}, env, tmp_path) == {
        "access_key_id": "AKIA1",
        "secret_access_key": "shh",
    }
    assert remote_settings(Remote("here", "/data/store", ""), {}, env, tmp_path) == {}


def test_a_key_file_secret_goes_to_a_file_only_its_owner_reads(tmp_path):
    gs = Remote("store", "gs://bucket/x", "gs")
    settings = remote_settings(gs, {}, secrets(DVC_GCS_CREDENTIALS_JSON='{"k": 1}'), tmp_path)
    key_path = Path(settings["credentialpath"])
    assert key_path.parent == tmp_path and key_path.read_text() == '{"k": 1}'
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_http_gets_basic_auth_unless_it_says_otherwise(tmp_path):
    http = Remote("web", "https://files.example/dvc", "https")
    env = secrets(DVC_REMOTE_USER="ci", DVC_REMOTE_PASSWORD="pw")
    assert remote_settings(http, {}, env, tmp_path) == {
        "user": "ci",
        "password": "pw",
        "auth": "basic",
    }
    assert "auth" not in remote_settings(http, {"auth": "custom"}, env, tmp_path)


def test_a_drive_remote_without_its_secret_is_refused_before_it_can_hang(tmp_path):
    drive = Remote("drive", "gdrive://folder-id", "gdrive")
    with pytest.raises(RemoteSetupError, match="needs the repository secret DVC_GDRIVE_CREDENTIAL"):
        remote_settings(drive, {}, secrets(), tmp_path)
    settings = remote_settings(drive, {}, secrets(DVC_GDRIVE_CREDENTIALS_DATA="{}"), tmp_path)
    assert settings["gdrive_use_service_account"] is True
    assert Path(settings["gdrive_service_account_json_file_path"]).read_text() == "{}"


def test_settings_land_in_the_local_config_dvc_reads(tmp_path):
    from dvc.config import Config
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True)
    with Config(dvc_dir=str(tmp_path / ".dvc")).edit("repo") as repo_config:
        repo_config["remote"]["store"] = {"url": "s3://bucket/x"}
    remote = Remote("store", "s3://bucket/x", "s3")
    write_local_settings(tmp_path / ".dvc", remote, {"access_key_id": "AKIA1"})
    local_path = tmp_path / ".dvc" / "config.local"
    assert stat.S_IMODE(local_path.stat().st_mode) == 0o600
    merged = Config(dvc_dir=str(tmp_path / ".dvc"))["remote"]["store"]
    assert merged["url"] == "s3://bucket/x" and merged["access_key_id"] == "AKIA1"
    assert "AKIA1" not in (tmp_path / ".dvc" / "config").read_text()


@pytest.mark.slow
def test_the_plugin_installs_from_the_registry_and_dvc_then_speaks_its_protocol(tmp_path):
    # A throwaway environment layered over this one: the plugin lands there, never here.
    overlay = tmp_path / "overlay"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(overlay)], check=True)
    python = overlay / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir, not a bare path: the suite's own .pth files (the editable project) count too.
    suite_site = sysconfig.get_paths()["purelib"]
    Path(site, "suite.pth").write_text(f"import site; site.addsitedir({suite_site!r})\n")
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([python, "-m", "dvc", "init", "-q"], cwd=project, check=True)
    (project / ".dvc" / "config").write_text(
        "[core]\n    remote = store\n['remote \"store\"']\n    url = ssh://127.0.0.1:9/store\n"
    )
    (project / "model.dvc").write_text(
        "outs:\n- md5: 0cc175b9c0f1b6a831c399e269772661\n  size: 1\n  path: model\n"
    )
    env = {**os.environ, WORKSPACE_ENV: str(project), "RUNNER_TEMP": str(tmp_path)}
    env.update(DVC_REMOTE_USER="ci", DVC_REMOTE_PASSWORD="pw")
    completed = subprocess.run(
        [python, "-m", "pipeline.inputs.pull"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert f"installing {plugin_requirement('ssh')}" in output
    assert list(Path(site).glob("dvc_ssh-*.dist-info")), output
    # Installed and loaded: DVC now tries the remote itself (nothing listens on port 9).
    assert "requires 'dvc-ssh'" not in output
    assert "failed to connect to ssh" in output and completed.returncode != 0
    assert "user = ci" in (project / ".dvc" / "config.local").read_text()
