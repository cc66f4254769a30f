"""render.yaml's real server, started on a loopback port and stopped with its whole group."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from pipeline.gate.render_service import RenderWebService, free_port
from pipeline.paths import REPO_ROOT


class RunningService:
    """A real gunicorn started with render.yaml's command, on a loopback port."""

    def __init__(self, model_dir: Path, env: dict | None = None, python_bin: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bin_dir = python_bin or Path(sys.executable).parent
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PORT": str(self.port),
            "MODEL_DIR": str(model_dir),
            **(env or {}),
        }
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"service-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop(), lives as long as the service
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            ["bash", "-c", RenderWebService.read(REPO_ROOT / "render.yaml").start_command],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_answering(self, deadline_seconds: float = 30) -> float:
        """Seconds from start until /api/health/ answers at all (200 or 503)."""
        while time.perf_counter() - self.started < deadline_seconds:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/api/health/", timeout=1)
                return time.perf_counter() - self.started
            # A read timeout: the socket is bound but the worker is still booting (a busy host).
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.02)
        raise RuntimeError(f"service did not answer: {self.log_path.read_text()[-2000:]}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()
        self.log_path.unlink(missing_ok=True)
