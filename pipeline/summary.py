"""Print every gate's verdict from reports/ as a short table (the end of `make demo`)."""

import sys

from pipeline.paths import Workspace
from pipeline.reports import read_json

STAGES = ("convert", "parity", "gate")


def verdict_rows(workspace: Workspace) -> list[tuple[str, str, str]]:
    """(stage, verdict, detail) for each gate stage, in pipeline order."""
    rows = []
    for stage in STAGES:
        path = workspace.report_path(stage)
        if not path.exists():
            rows.append((stage, "not run", ""))
            continue
        report = read_json(path)
        failed = [name for name, m in report.get("measures", {}).items() if not m["passed"]]
        detail = report.get("reason") or (f"failed: {', '.join(failed)}" if failed else "")
        if not detail and report.get("candidate_sha256"):
            detail = f"candidate {report['candidate_sha256'][:12]}"
        if stage == "gate" and "plan_fit" in report:
            detail = "; ".join(part for part in (detail, plan_fit_in_words(report)) if part)
        rows.append((stage, "PASSED" if report.get("passed") else "FAILED", detail))
    return rows


def plan_fit_in_words(report: dict) -> str:
    """The gate's plan and its recommendation, e.g. `on free; for 10 req/s: free x1, 1 worker`."""
    fit, recommended = report["plan_fit"], report["plan_fit"]["recommended"]
    target = f"for {fit['target_rps']:g} req/s"
    if recommended is None:
        return f"on {report['plan']['name']}; {target}: no plan fits"
    return (
        f"on {report['plan']['name']}; {target}: {recommended['plan']} "
        f"x{recommended['instances']}, {recommended['workers']} worker(s)"
    )


def summary(workspace: Workspace) -> int:
    """Print the table; exit status 1 when any gate that ran did not pass."""
    rows = verdict_rows(workspace)
    width = max(len(stage) for stage, _, _ in rows)
    print(f"{'stage':<{width}}  verdict  detail")
    for stage, verdict, detail in rows:
        print(f"{stage:<{width}}  {verdict:<7}  {detail}")
    return 1 if any(verdict == "FAILED" for _, verdict, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(summary(Workspace.from_env()))
