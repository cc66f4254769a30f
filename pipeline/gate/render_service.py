"""What render.yaml tells Render about the web service, and the environment the gate gives it.

The start command and literal envVars are read as Render reads them; the service's limits
(MAX_BATCH, MAX_BODY_BYTES) and its worker concurrency follow from that environment, so the
gate's worst-case requests are the largest the deployed service would accept.
"""

import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.params import GateParams
from service.errors import Refusal
from service.limits import Limits


class RenderYamlError(Refusal):
    """render.yaml does not describe one web service the gate can start."""


@dataclass(frozen=True)
class RenderWebService:
    """What render.yaml tells Render about the web service: how to start it, with what env."""

    start_command: str
    env: dict[str, str]
    plan: str | None = None  # the instance type Render deploys it on (none set: Render's default)

    @classmethod
    def read(cls, render_yaml_path: Path) -> "RenderWebService":
        """The one web service of render.yaml; RenderYamlError naming what is wrong."""
        try:
            blueprint = yaml.safe_load(render_yaml_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RenderYamlError(
                f"{render_yaml_path} does not exist; the gate starts the service the way "
                "render.yaml does, so restore it (git checkout render.yaml)"
            ) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RenderYamlError(f"{render_yaml_path} cannot be read as YAML: {error}") from None
        services = blueprint.get("services") if isinstance(blueprint, dict) else None
        if not isinstance(services, list):
            raise RenderYamlError(
                f"{render_yaml_path} has no `services:` list; Render's blueprint lists the web "
                "service under `services:`"
            )
        strays = [service for service in services if not isinstance(service, dict)]
        if strays:
            raise RenderYamlError(
                f"{render_yaml_path} lists {strays[0]!r} under `services:`; each entry must be a "
                "mapping (type, name, startCommand, ...)"
            )
        web = [service for service in services if service.get("type") == "web"]
        if len(web) != 1 or not isinstance(web[0].get("startCommand"), str):
            raise RenderYamlError(
                f"{render_yaml_path} must define exactly one web service with a startCommand"
            )
        if not isinstance(web[0].get("envVars") or [], list) or not all(
            isinstance(variable, dict) for variable in web[0].get("envVars") or []
        ):
            raise RenderYamlError(
                f"{render_yaml_path}: the web service's envVars must be a list of mappings "
                "(key, value)"
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

    def launch(self, settings: GateParams, model_dir: Path) -> "Launch":
        """How the gate starts this service on `model_dir`, on a free port of the loopback."""
        port = free_port()
        env = service_environment(self, settings, port, model_dir)
        limits = ServiceLimits.of(self.start_command, env)
        return Launch(self.start_command, env, f"http://127.0.0.1:{port}", limits)


@dataclass(frozen=True)
class Launch:
    """The start command, the environment the gate gives it, where the service answers, and
    the limits and concurrency that environment sets."""

    start_command: str
    env: dict[str, str]
    url: str
    limits: "ServiceLimits"


def service_environment(
    render: RenderWebService, settings: GateParams, port: int, model_dir: Path
) -> dict[str, str]:
    """The service's environment: the caller's, render.yaml's envVars, the gate's, experiments'."""
    # The service runs from this environment's own bin/ (gunicorn), as `make demo` has it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **render.env, "PATH": path, "PORT": str(port)}
    env["MODEL_DIR"] = str(model_dir)
    env.update({key: str(value) for key, value in settings.service_env.items()})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        # Where the environment sets neither, the service's own documented defaults.
        defaults = Limits()
        return cls(
            max_batch=_positive(env.get("MAX_BATCH"), defaults.max_batch),
            max_body_bytes=_positive(env.get("MAX_BODY_BYTES"), defaults.max_body_bytes),
            workers=_positive(env.get("WEB_CONCURRENCY"), 1),
            requests_per_worker=int(per_worker.group(1)) if per_worker else 1,
        )


def _positive(raw: str | None, default: int) -> int:
    return int(raw) if raw and raw.strip().isdigit() and int(raw) > 0 else default
