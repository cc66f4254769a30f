"""Stage `gate`: the real service, started as render.yaml starts it, under a Render plan's limits.

The plan (gate.plan, a row of gate.plans) sets the memory cgroup's limit and the CPU share the
kernel enforces. The gate refuses in seconds a bundle that cannot fit; measures what the
service costs in CPU unthrottled (cold starts, each request), which the host's other work
cannot move much, and judges every timing at the plan's share from that cost; then runs the
service under the plan's quota for a bounded load checked against parity's own answers,
health-check latency while the service is saturated (reported beside the judged figures), and
the kernel's peak under the most memory-hungry requests the service accepts. It says which
plans the candidate fits, and writes the verdict for exactly this candidate, with the machine
it was measured on. Any breach exits non-zero with a one-line reason.
"""

import sys
from dataclasses import dataclass

import numpy as np

from pipeline.gate.cost import measure_cost
from pipeline.gate.plan_fit import measured_from_verdict, plan_fit, recommendation_in_words
from pipeline.gate.preflight import refuse_what_cannot_fit
from pipeline.gate.render_service import (
    RenderWebService,
    free_port,
)
from pipeline.gate.run import GateFailure, observe_service, service_environment
from pipeline.gate.verdict import verdict, verdict_without_a_run
from pipeline.inputs.files import InputPaths
from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import read_json, write_verdict
from service.bundle import MODEL_NAME, sha256_of
from service.errors import Refusal
from service.predictor import Contract


@dataclass(frozen=True)
class ExpectedAnswers:
    """What the live service must answer: parity's own outputs, from this candidate."""

    samples: np.ndarray
    probabilities: np.ndarray
    labels: list[str]
    model_sha256: str
    value_key: str


def expected_answers(workspace: Workspace, params: dict, candidate_sha256: str) -> ExpectedAnswers:
    """Raw held-out samples and the candidate's own outputs for them in parity."""
    paths = InputPaths.from_params(params["inputs"], workspace)
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise GateFailure("parity's predictions are for another candidate; run parity again")
        probabilities = predictions["probabilities"]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"].astype(np.float32)
    manifest = read_json(workspace.candidate_dir / "manifest.json")
    contract = Contract.from_manifest(manifest)
    return ExpectedAnswers(
        samples, probabilities, list(contract.labels), candidate_sha256, contract.value_key
    )


def target_plan(settings: dict) -> tuple[str, dict]:
    """gate.plan's row of gate.plans, or a GateFailure naming the plans there are."""
    plans, name = settings["plans"], settings["plan"]
    if name not in plans:
        raise GateFailure(f"gate.plan={name!r} is not in gate.plans; use one of {', '.join(plans)}")
    return name, plans[name]


def gate_report(workspace: Workspace, params: dict, candidate_sha256: str) -> dict:
    """Fail fast on a bundle that cannot fit, else run the service and judge it."""
    settings = params["gate"]
    plan_name, plan = target_plan(settings)
    render = RenderWebService.read(workspace.render_yaml_path)
    env = service_environment(render, settings, free_port(), workspace.candidate_dir)
    preflight = refuse_what_cannot_fit(
        workspace.candidate_dir,
        plan_name,
        plan,
        env,
        REPO_ROOT,
    )
    expected = expected_answers(workspace, params, candidate_sha256)
    cost = measure_cost(render, settings, plan, expected, workspace.candidate_dir)
    run = observe_service(render, settings, plan, expected, workspace.candidate_dir)
    report = verdict(run, cost, settings, plan_name, plan)
    report["plan_fit"] = plan_fit(settings["plans"], measured_from_verdict(report), settings)
    report["figures"].update(preflight)
    report.update(start_command=render.start_command, render_env=render.env)
    if not report.get("service_log_tail") and not all(
        m["passed"] for m in report["measures"].values()
    ):
        report["service_log_tail"] = run.service_log_tail
    return report


def problems_of(report: dict, settings: dict) -> list[str]:
    problems = [
        f"{name} {m['value']} (needs {m['rule']} {m['threshold']})"
        + (f": {m['why']}" if m.get("why") else "")
        for name, m in report["measures"].items()
        if not m["passed"]
    ]
    if report.get("reason"):
        problems.insert(0, report["reason"])
    # Only a run that made its group can say whether the kernel enforced it.
    limits = report.get("limits") if "backend" in report else {}
    for what, limit in (limits or {}).items():
        if limit["enforced"]:
            continue
        print(
            f"WARNING: the {what} limit was NOT enforced by the kernel on this machine "
            f"({limit.get('note') or limit['backend']}); figures are not what Render's kernel "
            "would give",
            file=sys.stderr,
            flush=True,
        )
        if settings["require_enforced"]:
            problems.append(
                f"the {what} limit was not enforced by the kernel (gate.require_enforced is on)"
            )
    return problems


def gate(workspace: Workspace) -> None:
    """Run the gate on build/candidate/ and write reports/gate.json."""
    params = load_params(workspace)
    settings = params["gate"]
    candidate_sha256 = sha256_of(workspace.candidate_dir / MODEL_NAME)
    try:
        report = gate_report(workspace, params, candidate_sha256)
    except Refusal as failure:
        if settings.get("plan") in settings.get("plans", {}):
            report = verdict_without_a_run(settings, settings["plan"], str(failure))
        else:  # the plan itself is the problem: there is nothing to describe
            report = {"reason": str(failure), "measures": {}}
    report["candidate_sha256"] = candidate_sha256
    problems = problems_of(report, settings)
    report["passed"] = not problems
    write_verdict(workspace, "gate", report)
    if problems:
        raise SystemExit("gate failed: " + "; ".join(problems))
    measures, fit = report["measures"], report["plan_fit"]
    print(
        f"gate passed on plan {report['plan']['name']} ({report['plan']['memory_mb']} MB, "
        f"{report['plan']['cpu_share']} CPU; {report['backend']}): worst-case peak "
        f"{measures['worst_case_memory_mb']['value']} MB, cold start "
        f"{measures['cold_start_seconds']['value']} s, p95 {measures['latency_p95_ms']['value']} "
        f"ms, health under saturation {measures['health_latency_saturated_seconds']['value']} s, "
        f"sustainable {measures['sustainable_rps']['value']} req/s; for "
        f"{fit['target_rps']} req/s: {recommendation_in_words(fit)}"
    )
    for sentence in report.get("host_busy", []):
        print(f"note: {sentence} (the figure is marked host_busy in reports/gate.json)")


if __name__ == "__main__":
    gate(Workspace.from_env())
