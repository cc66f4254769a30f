"""What render.yaml tells Render about the web service, and what the gate derives from it.

The start command and literal envVars are read as Render reads them; the service's limits
(MAX_BATCH, MAX_BODY_BYTES) and its worker concurrency follow from that environment, so the
gate's worst-case requests are the largest the deployed service would accept.
"""

import inspect
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.cgroups import distribution_libraries
from pipeline.paths import REPO_ROOT
from service.errors import Refusal
from service.runtime import RUNTIMES


class RenderYamlError(Refusal):
    """render.yaml does not describe one web service the gate can start."""


@dataclass(frozen=True)
class RenderWebService:
    """What render.yaml tells Render about the web service: how to start it, with what env."""

    start_command: str
    env: dict[str, str]
    plan: str | None = None  # the instance type Render deploys it on (none set: Render's default)

    def start_in(self, group, env: dict[str, str], log) -> subprocess.Popen:
        """The start command in `group`, from the repository root, as Render runs it from the
        repository, its output and errors to `log`."""
        return group.popen(
            self.start_command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    @classmethod
    def read(cls, render_yaml_path: Path) -> "RenderWebService":
        blueprint = yaml.safe_load(render_yaml_path.read_text(encoding="utf-8"))
        web = [service for service in blueprint["services"] if service.get("type") == "web"]
        if len(web) != 1 or "startCommand" not in web[0]:
            raise RenderYamlError(
                f"{render_yaml_path} must define exactly one web service with a startCommand"
            )
        # Only literal values: generateValue, fromDatabase and `sync: false` secrets exist on
        # Render alone. WEB_CONCURRENCY and TFLITE_NUM_THREADS live here, so the gate runs the
        # worker count Render will run rather than whatever the caller's shell happens to set.
        env = {
            str(variable["key"]): str(variable["value"])
            for variable in web[0].get("envVars") or []
            if "key" in variable and "value" in variable
        }
        return cls(start_command=web[0]["startCommand"], env=env, plan=web[0].get("plan"))


def documented_defaults() -> tuple[int, int]:
    """(MAX_BATCH, MAX_BODY_BYTES) the service uses where the environment sets neither."""
    try:  # a service that keeps its limits in one table (service/limits.py)
        from service.limits import Limits

        defaults = Limits()
        return defaults.max_batch, defaults.max_body_bytes
    except ImportError:  # a service whose factory's keyword defaults are the documented ones
        from service.app import create_app

        parameters = inspect.signature(create_app).parameters
        return parameters["max_batch"].default, parameters["max_body_bytes"].default


@dataclass(frozen=True)
class ServiceLimits:
    """The request limits and concurrency the service runs with, from its environment."""

    max_batch: int
    max_body_bytes: int
    workers: int
    requests_per_worker: int

    @property
    def concurrency(self) -> int:
        """Requests the service works on at once: every thread or connection of every worker."""
        return self.workers * self.requests_per_worker

    @classmethod
    def of(cls, start_command: str, env: dict[str, str]) -> "ServiceLimits":
        # gthread's --threads, or an async worker's --worker-connections.
        per_worker = re.search(r"--(?:threads|worker-connections)[=\s]+(\d+)", start_command)
        default_batch, default_body = documented_defaults()
        return cls(
            max_batch=_positive(env.get("MAX_BATCH"), default_batch),
            max_body_bytes=_positive(env.get("MAX_BODY_BYTES"), default_body),
            workers=_positive(env.get("WEB_CONCURRENCY"), 1),
            requests_per_worker=int(per_worker.group(1)) if per_worker else 1,
        )


def _positive(raw: str | None, default: int) -> int:
    return int(raw) if raw and raw.strip().isdigit() and int(raw) > 0 else default


def lite_runtime_libraries() -> list[Path]:
    """The shared libraries of every installed lite runtime, for evict_from_page_cache."""
    return distribution_libraries(*(name for name, _ in RUNTIMES))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
