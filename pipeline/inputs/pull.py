"""Pull the user's DVC-tracked inputs on a CI runner: pick the DVC remote, install the one storage
plugin its URL needs, write its credentials from the environment into .dvc/config.local, then
`dvc pull --allow-missing` from it.

    python -m pipeline.inputs.pull

The workflows give the repository's DVC_* secrets to this command under their own names
(CREDENTIAL_SECRETS); each is written only for the remote type that reads it, never printed.
With no DVC remote (the demo) there is nothing to pull, and it says so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.paths import REPO_ROOT, Workspace
from service.errors import Refusal

# The extra of pyproject.toml (named as DVC names its own extras) holding the plugin each URL
# scheme needs; local paths and HTTP(S) are served by DVC itself.
SCHEME_EXTRAS = {
    "s3": "s3",
    "azure": "azure",
    "gs": "gs",
    "gdrive": "gdrive",
    "ssh": "ssh",
    "webdav": "webdav",
    "webdavs": "webdav",
}
BUILT_IN_SCHEMES = ("", "http", "https")


@dataclass(frozen=True)
class Credential:
    """A repository secret, given as the environment variable of the same name, and the remote
    option it sets; `as_file`: the value goes to a private file, the option names that file."""

    secret: str
    option: str
    as_file: bool = False


USER = Credential("DVC_REMOTE_USER", "user")
PASSWORD = Credential("DVC_REMOTE_PASSWORD", "password")
CREDENTIALS = {
    "s3": (
        Credential("DVC_AWS_ACCESS_KEY_ID", "access_key_id"),
        Credential("DVC_AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ),
    "azure": (Credential("DVC_AZURE_STORAGE_CONNECTION_STRING", "connection_string"),),
    "gs": (Credential("DVC_GCS_CREDENTIALS_JSON", "credentialpath", as_file=True),),
    "gdrive": (
        Credential("DVC_GDRIVE_CREDENTIALS_DATA", "gdrive_service_account_json_file_path", True),
    ),
    "ssh": (USER, PASSWORD, Credential("DVC_SSH_PRIVATE_KEY", "keyfile", as_file=True)),
    "http": (USER, PASSWORD),
    "https": (USER, PASSWORD),
    "webdav": (USER, PASSWORD),
    "webdavs": (USER, PASSWORD),
}
CREDENTIAL_SECRETS = sorted({c.secret for group in CREDENTIALS.values() for c in group})
# Set with the credentials unless the remote's config already says otherwise: DVC's HTTP remote
# ignores user and password without an `auth` method, and a Drive key needs service-account mode.
WITH_CREDENTIALS = {
    "http": {"auth": "basic"},
    "https": {"auth": "basic"},
    "gdrive": {"gdrive_use_service_account": True},
}
# Without its secret, DVC's Drive client opens a browser to sign in and waits: a runner hangs.
REQUIRED_SECRETS = {"gdrive": "DVC_GDRIVE_CREDENTIALS_DATA"}


class RemoteSetupError(Refusal):
    """The DVC remote cannot be pulled from on this runner; the message names the fix."""


@dataclass(frozen=True)
class Remote:
    """The DVC remote to pull from: its name, its URL and the scheme that decides its plugin."""

    name: str
    url: str
    scheme: str


def chosen_remote(config: dict) -> Remote | None:
    """The default remote, or the only one; None with no remote; refused when several remotes
    and no default leave the choice open (as `dvc pull` itself refuses)."""
    remotes = config.get("remote") or {}
    if not remotes:
        return None
    name = config.get("core", {}).get("remote")
    if name is None:
        if len(remotes) > 1:
            raise RemoteSetupError(
                f"{len(remotes)} DVC remotes ({', '.join(sorted(remotes))}) and no default: run "
                "`dvc remote default NAME` with the one holding your inputs, commit .dvc/config"
            )
        name = next(iter(remotes))
    if name not in remotes:
        raise RemoteSetupError(
            f"the default DVC remote {name!r} is not configured; remotes: {', '.join(remotes)}"
        )
    url, seen = remotes[name]["url"], {name}
    # `remote://other/path` builds on another remote's URL.
    while url.startswith("remote://"):
        base = urlsplit(url).netloc
        if base in seen or base not in remotes:
            raise RemoteSetupError(f"remote {name!r}: {url} names no usable remote {base!r}")
        seen.add(base)
        url = remotes[base]["url"].rstrip("/") + urlsplit(url).path
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    return Remote(name, url, scheme)


def plugin_requirement(scheme: str, pyproject_path: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The pinned requirement of the plugin a scheme needs ('' for none), from pyproject.toml."""
    if scheme in BUILT_IN_SCHEMES:
        return ""
    extra = SCHEME_EXTRAS.get(scheme)
    if extra is None:
        raise RemoteSetupError(
            f"a {scheme}:// remote needs a DVC plugin this project does not pin; remotes it "
            f"supports: {', '.join(sorted(SCHEME_EXTRAS))}, HTTP(S) and local folders (or add "
            f"an extra named after DVC's own to pyproject.toml)"
        )
    project = tomllib.loads(pyproject_path.read_text(encoding="utf-8"))["project"]
    (requirement,) = project["optional-dependencies"][extra]
    return requirement


def install_plugin(requirement: str, remote: Remote) -> None:
    """pip-install the plugin beside the installed DVC, kept at its version; nothing when the
    pinned version is there already."""
    name, _, version = requirement.partition("==")
    try:
        if metadata.version(name) == version:
            return
    except metadata.PackageNotFoundError:
        pass
    dvc = f"dvc=={metadata.version('dvc')}"
    print(f"installing {requirement}, the plugin of the {remote.scheme} remote {remote.name!r}")
    command = [sys.executable, "-m", "pip", "install", "--quiet", dvc, requirement]
    if subprocess.run(command).returncode != 0:
        raise RemoteSetupError(f"pip could not install {requirement} beside {dvc}: see above")


def remote_settings(remote: Remote, existing: dict, env: dict, secrets_dir: Path) -> dict:
    """The options to write into .dvc/config.local for `remote` from the secrets set in `env`;
    a secret meant for a file is written to a private file under `secrets_dir`."""
    given = [c for c in CREDENTIALS.get(remote.scheme, ()) if env.get(c.secret)]
    required = REQUIRED_SECRETS.get(remote.scheme)
    if required and not env.get(required):
        raise RemoteSetupError(
            f"the {remote.scheme} remote {remote.name!r} needs the repository secret {required} "
            "on CI (without it DVC opens a browser to sign in and waits); see docs/releasing.md"
        )
    settings: dict = {}
    for credential in given:
        value = env[credential.secret]
        if credential.as_file:
            path = secrets_dir / f"dvc-{remote.name}-{credential.option}"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(descriptor, 0o600)  # also when the file was there before
            with os.fdopen(descriptor, "w", encoding="utf-8") as secret_file:
                secret_file.write(value)
            value = str(path)
        settings[credential.option] = value
    if given:
        for option, value in WITH_CREDENTIALS.get(remote.scheme, {}).items():
            if option not in existing:
                settings[option] = value
    return settings


def write_local_settings(dvc_dir: Path, remote: Remote, settings: dict) -> None:
    """Add `settings` to the remote in .dvc/config.local (git never holds it), readable by the
    owner only; DVC validates them against the remote type's schema."""
    from dvc.config import Config

    with Config(dvc_dir=str(dvc_dir)).edit("local") as local:
        local["remote"].setdefault(remote.name, {}).update(settings)
    (dvc_dir / "config.local").chmod(0o600)


def pull(workspace: Workspace, env: dict) -> int:
    """Pull from the chosen remote after installing its plugin and writing its credentials;
    the exit code of `dvc pull` (0 with no remote)."""
    from dvc.config import Config

    dvc_dir = workspace.root / ".dvc"
    if not dvc_dir.is_dir():
        print(f"{workspace.root} is no DVC project: nothing to pull")
        return 0
    config = Config(dvc_dir=str(dvc_dir))
    remote = chosen_remote(config)
    if remote is None:
        print("no DVC remote configured: nothing to pull (the demo builds its own inputs)")
        return 0
    # Everything that can refuse is decided before the slow install.
    requirement = plugin_requirement(remote.scheme)
    secrets_dir = Path(env.get("RUNNER_TEMP") or tempfile.gettempdir())
    settings = remote_settings(remote, config["remote"][remote.name], env, secrets_dir)
    if requirement:
        install_plugin(requirement, remote)
    if settings:
        write_local_settings(dvc_dir, remote, settings)
    readers = CREDENTIALS.get(remote.scheme, ())
    secrets = [c.secret for c in readers if env.get(c.secret)]
    using = f" with {', '.join(secrets)}" if secrets else ""
    if readers and not secrets:
        using = f" with none of {', '.join(c.secret for c in readers)} set (DVC's own defaults)"
    print(f"pulling from the DVC remote {remote.name!r} ({remote.url}){using}")
    # Outputs never pushed (a candidate) are rebuilt by dvc repro; the inputs must be there.
    command = [sys.executable, "-m", "dvc", "pull", "--allow-missing", "--remote", remote.name]
    completed = subprocess.run(command, cwd=workspace.root)
    if completed.returncode != 0:
        print(f"dvc pull from {remote.name!r} ({remote.url}) failed: see its error above")
    return completed.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.inputs.pull", description=__doc__.split("\n\n", 1)[0]
    )
    parser.parse_args(argv)
    try:
        return pull(Workspace.from_env(), dict(os.environ))
    except Refusal as refusal:
        print(f"dvc pull refused: {refusal}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
