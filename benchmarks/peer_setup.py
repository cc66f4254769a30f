"""Set up the servers `make bench-peers` compares: the peers' venvs, each start command.

The peers run in their own venvs under build/peers/, installed from the pinned requirements
beside their code in benchmarks/peer_servers/; ours runs from this environment exactly as
render.yaml says.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

from pipeline.gate.render_service import RenderWebService, free_port
from pipeline.paths import REPO_ROOT

PEER_SOURCE_DIR = REPO_ROOT / "benchmarks" / "peer_servers"
# Each venv's pinned requirements: ours is what Render's build installs (render.yaml).
REQUIREMENTS = {
    "ours": REPO_ROOT / "service" / "requirements.txt",
    "mlserver": PEER_SOURCE_DIR / "mlserver-requirements.txt",
    "bentoml": PEER_SOURCE_DIR / "bentoml-requirements.txt",
}


def log(message: str) -> None:
    print(f"[bench-peers {time.strftime('%H:%M:%S')}] {message}", flush=True)


def peer_venv(name: str, peers_dir: Path, timeout_seconds: float) -> tuple[Path, float | None]:
    """Server `name`'s venv, installed from its pinned requirements unless already installed.

    Returns the venv and the seconds this run spent installing it (None: reused).
    """
    requirements = REQUIREMENTS[name]
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv, stamp = peers_dir / f"{name}-venv", peers_dir / f"{name}-venv" / ".installed"
    if stamp.is_file() and stamp.read_text() == digest:
        return venv, None
    shutil.rmtree(venv, ignore_errors=True)
    log(f"installing {name} into {venv.relative_to(REPO_ROOT)} from {requirements.name}")
    started = time.perf_counter()
    created = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
    )
    if created.returncode != 0:
        raise RuntimeError(f"python -m venv {venv} failed: {created.stderr.strip()[-1500:]}")
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
    )
    if install.returncode != 0:
        raise RuntimeError(f"{name} did not install: {install.stderr.strip()[-1500:]}")
    stamp.write_text(digest)
    return venv, round(time.perf_counter() - started, 1)


def site_packages_files(venv: Path) -> list[Path]:
    """Every file a venv installed, so a server pays for reading its own libraries."""
    return [path for path in venv.glob("lib/python*/site-packages/**/*") if path.is_file()]


def service_files() -> list[Path]:
    """The files of the distributions in service/requirements.txt, as installed here."""
    from importlib.metadata import PackageNotFoundError, distribution

    files = []
    for line in (REPO_ROOT / "service" / "requirements.txt").read_text().splitlines():
        name = line.split("#")[0].split("==")[0].split(">=")[0].split(";")[0].strip()
        if not name:
            continue
        try:
            installed = distribution(name)
        except PackageNotFoundError:
            continue
        files += [Path(installed.locate_file(file)) for file in installed.files or []]
    return [path for path in files if path.is_file()]


def launch(
    key: str, bundle: Path, peers_dir: Path, base_env: dict, venv: Path | None
) -> tuple[str, dict]:
    """The shell command ({port} in it) and environment that start server `key`.

    Ours runs from `venv` when given (else from this environment); a peer always does.
    """
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    if key == "ours":  # as the gate does: render.yaml's envVars, then the bundle
        env = {**base_env, **render.env, "MODEL_DIR": str(bundle)}
        if venv is not None:
            env.pop("VIRTUAL_ENV", None)
            env["PATH"] = f"{venv / 'bin'}:{os.environ['PATH']}"
        return render.start_command, env
    assert venv is not None, f"{key} runs from its own venv"
    env = {k: v for k, v in base_env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
        PYTHONPATH=str(PEER_SOURCE_DIR),
        MODEL_DIR=str(bundle),
        TFLITE_NUM_THREADS=render.env.get("TFLITE_NUM_THREADS", "1"),
    )
    if key == "mlserver":
        models_dir = peers_dir / "mlserver-models"
        (models_dir / "classifier").mkdir(parents=True, exist_ok=True)
        settings = {
            "name": "classifier",
            "implementation": "mlserver_runtime.LiteRuntime",
            "parameters": {"uri": str(bundle)},
        }
        (models_dir / "classifier" / "model-settings.json").write_bytes(orjson.dumps(settings))
        # MLServer also opens gRPC and metrics ports: free ones, so parallel runs never clash.
        env.update(
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_GRPC_PORT=str(free_port()),
            MLSERVER_METRICS_PORT=str(free_port()),
        )
        return f"cd {models_dir} && MLSERVER_HTTP_PORT={{port}} exec mlserver start .", env
    env.update(BENTOML_HOME=str(peers_dir / "bentoml-home"), BENTOML_DO_NOT_TRACK="true")
    command = (
        f"cd {PEER_SOURCE_DIR} && exec bentoml serve bentoml_service:LiteService"
        " --host 127.0.0.1 --port {port}"
    )
    return command, env
