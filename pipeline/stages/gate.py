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

from pipeline.gate.cost import measure_cost
from pipeline.gate.expected import expected_answers
from pipeline.gate.outcome import refused_verdict
from pipeline.gate.preflight import refuse_what_cannot_fit
from pipeline.gate.render_service import RenderWebService
from pipeline.gate.throttled import observe_service
from pipeline.gate.timings import timing_measures
from pipeline.gate.verdict import gate_verdict
from pipeline.gate.watch import GateFailure
from pipeline.params import GateParams, load_params
from pipeline.paths import Workspace
from pipeline.verdicts import write_verdict
from service.bundle import MODEL_NAME, sha256_of
from service.errors import Refusal


def gate(workspace: Workspace) -> None:
    """Run the gate on build/candidate/ and write reports/gate.json."""
    candidate_dir = workspace.candidate_dir
    model_path = candidate_dir / MODEL_NAME
    candidate_sha256 = sha256_of(model_path) if model_path.is_file() else None
    settings: GateParams | None = None
    try:
        params = load_params(workspace)
        settings = params.gate
        if candidate_sha256 is None:
            raise GateFailure(f"there is no candidate at {model_path}; run `dvc repro convert`")
        render = RenderWebService.read(workspace.render_yaml_path)
        launch = render.launch(settings, candidate_dir)
        preflight = refuse_what_cannot_fit(candidate_dir, settings, launch.env)
        expected = expected_answers(workspace, params.inputs, candidate_sha256)
        cost = measure_cost(render, settings, expected, candidate_dir)
        run = observe_service(render, settings, expected, candidate_dir)
        timings = timing_measures(cost, settings, len(run.processes.workers_before))
        verdict = gate_verdict(
            run,
            cost,
            timings,
            settings,
            candidate_sha256=candidate_sha256,
            preflight=preflight,
            render=render,
        )
    except Refusal as failure:
        verdict = refused_verdict(settings, candidate_sha256, str(failure))
    write_verdict(workspace, "gate", verdict.report)
    for warning in verdict.warnings:
        print(warning, file=sys.stderr, flush=True)
    if verdict.problems:
        raise SystemExit("gate failed: " + "; ".join(verdict.problems))
    for line in verdict.lines:
        print(line)


if __name__ == "__main__":
    gate(Workspace.from_env())
