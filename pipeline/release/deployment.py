"""What Render will deploy against what the gate passed: render.yaml's plan, the CPU share the
service is told it has (CPU_SHARE, which sizes its admission) and how many workers it runs.

Promote refuses a release whose deploy is not the one the gate ran, naming both sides and the
fix, rather than rewriting render.yaml: render.yaml is one of the gate's inputs and part of what
a release serves, so a rewrite at promote time would ship a service configuration the gate
never ran (another CPU_SHARE admits another load) under a verdict that no longer speaks for it;
and moving to a paid plan is the engineer's decision, made in render.yaml and then gated.
"""

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.gate.render_service import RenderWebService
from pipeline.release.errors import PromotionRefused
from service.limits import Limits

# gunicorn's worker count as a start command may give it: a number, or WEB_CONCURRENCY.
WORKERS_OPTION = re.compile(r"(?:--workers[=\s]+|-w\s*)(\S+)")
FROM_ENV = re.compile(r"\$\{?WEB_CONCURRENCY(?::-\d+)?\}?")


@dataclass(frozen=True)
class Deployment:
    """One side of the comparison: a plan, the service's CPU_SHARE, its worker count (None
    where it cannot be told)."""

    plan: str | None
    cpu_share: float | None  # None: not a number (the service refuses to start)
    workers: int | None

    def in_words(self) -> str:
        workers = "workers not fixed" if self.workers is None else f"{self.workers} worker(s)"
        return f"plan {self.plan or '(none set)'}, CPU_SHARE {share(self.cpu_share)}, {workers}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def share(value: float | None) -> str:
    return "(not a number)" if value is None else f"{value:g}"


def cpu_share_of(env: dict[str, str]) -> float | None:
    """The CPU share the service reads from `env` (its own default where unset)."""
    try:
        return float(env.get("CPU_SHARE") or Limits().cpu_share)
    except ValueError:
        return None


def workers_started(start_command: str, env: dict[str, str]) -> int | None:
    """The worker count gunicorn runs with `env`; None when the host's environment decides."""
    option = WORKERS_OPTION.search(start_command)
    value = option.group(1) if option else "$WEB_CONCURRENCY"  # gunicorn's own default
    if value.isdigit():
        return int(value)
    if FROM_ENV.fullmatch(value) and env.get("WEB_CONCURRENCY", "").strip().isdigit():
        return int(env["WEB_CONCURRENCY"])
    return None


def deployed(render_yaml_path: Path) -> Deployment:
    """What Render deploys from render.yaml: its plan, CPU_SHARE and workers."""
    render = RenderWebService.read(render_yaml_path)
    return Deployment(
        plan=render.plan,
        cpu_share=cpu_share_of(render.env),
        workers=workers_started(render.start_command, render.env),
    )


def gated(gate_report: dict[str, Any], service_env: dict[str, Any]) -> Deployment:
    """What the gate ran: its plan, the CPU_SHARE it gave the service (render.yaml's envVars,
    then gate.service_env), and the workers it counted."""
    env = {**(gate_report.get("render_env") or {}), **service_env}
    return Deployment(
        plan=(gate_report.get("plan") or {}).get("name"),
        cpu_share=cpu_share_of(env),
        workers=(gate_report.get("figures") or {}).get("workers"),
    )


def differences(gate_report: dict, service_env: dict, render_yaml_path: Path) -> list[str]:
    """How the deploy render.yaml describes differs from the gate's run; [] when it does not."""
    return mismatches(
        gated(gate_report, service_env),
        (gate_report.get("plan") or {}).get("cpu_share"),
        deployed(render_yaml_path),
        "CPU_SHARE" in service_env,
    )


def mismatches(
    ran: Deployment, plan_share: float | None, deploys: Deployment, share_from_params=False
) -> list[str]:
    """How `deploys` differs from the gated run `ran` (on a plan whose CPU share is
    `plan_share`, when known); [] when it does not."""
    found = []
    if deploys.plan != ran.plan:
        found.append(f"render.yaml deploys plan {deploys.plan or '(none set)'}, not {ran.plan}")
    if plan_share is not None and deploys.cpu_share != float(plan_share):
        found.append(
            f"render.yaml tells the service CPU_SHARE {share(deploys.cpu_share)}, not plan "
            f"{ran.plan}'s {plan_share:g}"
        )
    if ran.cpu_share != deploys.cpu_share:
        where = " (gate.service_env)" if share_from_params else ""
        found.append(
            f"the gate ran the service with CPU_SHARE {share(ran.cpu_share)}{where}, render.yaml "
            f"deploys it with {share(deploys.cpu_share)}"
        )
    if deploys.workers is None:
        found.append(
            "render.yaml leaves the worker count to the host (set WEB_CONCURRENCY in its envVars)"
        )
    elif deploys.workers != ran.workers:
        found.append(f"render.yaml runs {deploys.workers} worker(s), the gate ran {ran.workers}")
    return found


def deployment_record(gate_report: dict, service_env: dict, render_yaml_path: Path) -> dict:
    """The manifest's record: the plan the gate passed and the one render.yaml deploys."""
    return {
        "gated": gated(gate_report, service_env).as_dict(),
        "deployed": deployed(render_yaml_path).as_dict(),
    }


def require_gated_deployment(gate_report: dict, service_env: dict, render_yaml_path: Path) -> None:
    """Refuse a release that Render would deploy otherwise than the gate ran it."""
    found = differences(gate_report, service_env, render_yaml_path)
    if not found:
        return
    ran, deploys = gated(gate_report, service_env), deployed(render_yaml_path)
    plan_share = (gate_report.get("plan") or {}).get("cpu_share", ran.cpu_share)
    raise PromotionRefused(
        not_as_gated(found, ran, plan_share, deploys, "the gate")
        + " and run `dvc repro`, so the gate runs the service exactly as Render will; or gate "
        f"the plan render.yaml deploys (gate.plan={deploys.plan or '<plan>'} in params.yaml)"
    )


def require_deployed_as_recorded(record: dict, tag: str, render_yaml_path: Path) -> None:
    """Refuse a rollback to `tag` (its manifest's `deployment` record) that Render would deploy
    otherwise than its gate ran it."""
    ran = Deployment(**{key: record["gated"].get(key) for key in ("plan", "cpu_share", "workers")})
    deploys = deployed(render_yaml_path)
    found = mismatches(ran, ran.cpu_share, deploys)
    if found:
        raise PromotionRefused(
            not_as_gated(found, ran, ran.cpu_share, deploys, f"{tag}'s gate")
            + f", then roll back again; or roll back to a release gated on plan {deploys.plan}"
        )


def not_as_gated(found: list[str], ran: Deployment, plan_share, deploys: Deployment, who: str):
    """The refusal's words: what differs, both sides, and the render.yaml that deploys `ran`."""
    return (
        f"what Render would deploy is not what {who} passed: {'; '.join(found)} (gate: "
        f"{ran.in_words()}; render.yaml: {deploys.in_words()}). To deploy on {ran.plan}, set "
        f'`plan: {ran.plan}` and CPU_SHARE "{share(plan_share)}" (and WEB_CONCURRENCY '
        f'"{ran.workers}") in render.yaml, commit it'
    )


def deployment_in_words(gate_report: dict, service_env: dict, render_yaml_path: Path) -> str:
    """For the summary and the release report: what deploys, and whether it is what passed."""
    deploys = deployed(render_yaml_path)
    if not differences(gate_report, service_env, render_yaml_path):
        return f"render.yaml deploys it as gated ({deploys.in_words()})"
    return (
        f"render.yaml deploys {deploys.in_words()}, NOT what the gate ran "
        f"({gated(gate_report, service_env).in_words()}): promote refuses it"
    )
