"""The release's remote objects (pipeline/release/remote_objects.py) without a model: what the
verification repository inherits from the pushing one."""

import subprocess

from pipeline.release.git_repo import GitRepo
from pipeline.release.remote_objects import credentials_config


def test_verification_reads_with_the_push_credentials_never_the_local_objects(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo = GitRepo(tmp_path)
    # What actions/checkout stores, and what would let a scratch repository read local objects.
    header = "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46dG9rZW4="
    repo.run("config", "--local", "http.https://github.com/.extraheader", header)
    repo.run("config", "--local", "lfs.storage", str(tmp_path / ".git" / "lfs"))
    repo.run("config", "--local", "lfs.url", "https://lfs.example.com/repo")
    inherited = dict(credentials_config(repo))
    assert inherited["http.https://github.com/.extraheader"] == header
    assert inherited["lfs.url"] == "https://lfs.example.com/repo"
    assert "lfs.storage" not in inherited
