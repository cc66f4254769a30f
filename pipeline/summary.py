"""Every gate's verdict for the CURRENT candidate and inputs, as a short table (`make demo`).

A verdict reads PASSED only if it passed, judged the model now in build/candidate, and its
inputs fingerprint matches the stage's deps and params now; otherwise FAILED, `stale` (it
judged other files or settings) or `not run`. Promote applies the same rule.
"""

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pipeline.fingerprint import UnknownStage, changes, inputs_fingerprint
from pipeline.gate.machine import measured_elsewhere
from pipeline.gate.plan_fit import recommendation_in_words
from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.deployment import deployment_in_words
from pipeline.verdicts import GATE_STAGES, read_json
from service.bundle import MODEL_NAME, sha256_of

STAGES = GATE_STAGES
PASSED, FAILED, STALE, NOT_RUN = "PASSED", "FAILED", "stale", "not run"


@dataclass(frozen=True)
class StageVerdict:
    """One stage's verdict as it stands for the current candidate and inputs."""

    stage: str
    verdict: str  # PASSED | FAILED | stale | not run
    detail: str
    report: dict[str, Any] | None = None


def current_candidate_sha256(workspace: Workspace) -> str | None:
    model_path = workspace.candidate_dir / MODEL_NAME
    return sha256_of(model_path) if model_path.is_file() else None


def failure_detail(report: dict[str, Any]) -> str:
    failed = [name for name, m in report.get("measures", {}).items() if not m.get("passed")]
    return report.get("reason") or ", ".join(failed) or "failed"


def judge(workspace: Workspace, stage: str, candidate_sha256: str | None) -> StageVerdict:
    """The stage's verdict, or why it does not speak for the candidate and inputs on disk."""
    path = workspace.report_path(stage)
    if not path.is_file():
        return StageVerdict(stage, NOT_RUN, f"no verdict at reports/{path.name}")
    report = read_json(path)
    try:
        changed = changes(report.get("inputs_fingerprint"), inputs_fingerprint(workspace, stage))
    except UnknownStage as error:
        return StageVerdict(stage, STALE, str(error), report)
    if "inputs_fingerprint" not in report:
        detail = "the verdict records no inputs fingerprint (written before fingerprints existed)"
        return StageVerdict(stage, STALE, detail, report)
    if changed:
        return StageVerdict(stage, STALE, f"{'; '.join(changed)} since the {stage} ran", report)
    judged = report.get("candidate_sha256")
    if judged and judged != candidate_sha256:
        now = f"the candidate is {candidate_sha256[:12]}" if candidate_sha256 else "it is gone"
        return StageVerdict(stage, STALE, f"it judged candidate {judged[:12]} but {now}", report)
    if not report.get("passed"):
        return StageVerdict(stage, FAILED, failure_detail(report), report)
    if not judged or candidate_sha256 is None:
        return StageVerdict(stage, STALE, "it names no candidate on disk", report)
    return StageVerdict(stage, PASSED, f"candidate {judged[:12]}", report)


def stage_verdicts(workspace: Workspace) -> list[StageVerdict]:
    """Each gate stage's StageVerdict, in pipeline order."""
    candidate_sha256 = current_candidate_sha256(workspace)
    verdicts = []
    for stage in STAGES:
        verdict = judge(workspace, stage, candidate_sha256)
        upstream = next((v for v in verdicts if v.verdict != PASSED), None)
        if verdict.verdict == PASSED and upstream:
            # A pass built on an upstream stage that does not pass now speaks for nothing.
            detail = f"it rests on {upstream.stage}, which is {upstream.verdict} now"
            verdict = StageVerdict(stage, STALE, detail, verdict.report)
        verdicts.append(verdict)
    return verdicts


def verdict_rows(workspace: Workspace) -> list[tuple[str, str, str]]:
    """(stage, verdict, detail) per gate stage; verdict is PASSED, FAILED, stale or not run."""
    rows = []
    for verdict in stage_verdicts(workspace):
        detail = verdict.detail
        if verdict.stage == "gate" and verdict.report and "plan_fit" in verdict.report:
            parts = (detail, plan_fit_in_words(verdict.report), deploys(workspace, verdict.report))
            detail = "; ".join(part for part in parts if part)
        gate_report = verdict.report if verdict.stage == "gate" else None
        elsewhere = measured_elsewhere(gate_report) if gate_report else None
        if elsewhere:
            detail += f"; NOT measured on this machine: {elsewhere}"
        rows.append((verdict.stage, verdict.verdict, detail))
    return rows


def plan_fit_in_words(report: dict) -> str:
    """The gate's plan and its recommendation, e.g. `on free; for 10 req/s: free x1, 1 worker`."""
    fit = report["plan_fit"]
    target = f"for {fit['target_rps']:g} req/s"
    return f"on {report['plan']['name']}; {target}: {recommendation_in_words(fit)}"


def deploys(workspace: Workspace, gate_report: dict) -> str:
    """What render.yaml deploys, and whether it is what the gate ran (promote's own check)."""
    if not workspace.render_yaml_path.is_file():
        return ""
    service_env = load_params(workspace).gate.service_env
    return deployment_in_words(gate_report, service_env, workspace.render_yaml_path)


NEXT_STEPS = """
Next steps (run `. .venv/bin/activate` first to type dvc and python yourself):
  serve it:             make serve
                        curl -s localhost:8000/api/health/
  read the report:      make report
                        then open reports/release.html (reports/release.md for a PR comment)
  bring your own model: python -m pipeline.init --model ~/my_model.keras --labels ~/labels.txt \\
                            --heldout ~/heldout.npz [--normaliser ~/scaler.joblib]
                        dvc repro && python -m pipeline.summary
  release it:           python -m pipeline.promote --dry-run (docs/releasing.md)
"""
FIX_FIRST = """
Next step: fix what the failed stage above names (a stale one needs only a rerun), then run
`dvc repro` and `python -m pipeline.summary` again (docs/pipeline.md explains the verdicts).
"""


def summary(workspace: Workspace, next_steps: bool = False) -> int:
    """Print the table; exit status 0 only when every stage PASSED for the current candidate."""
    rows = verdict_rows(workspace)
    width = max(len(stage) for stage, _, _ in rows)
    print(f"{'stage':<{width}}  verdict  detail")
    for stage, verdict, detail in rows:
        print(f"{stage:<{width}}  {verdict:<7}  {detail}")
    passed = all(verdict == PASSED for _, verdict, _ in rows)
    if next_steps:
        print(NEXT_STEPS if passed else FIX_FIRST, end="")
    return 0 if passed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.summary",
        description="Every gate's verdict for the current candidate.",
    )
    parser.add_argument("--next-steps", action="store_true", help="then say what to do next")
    sys.exit(summary(Workspace.from_env(), parser.parse_args().next_steps))
