"""The gate on the same candidate twice (`dvc repro -f -s gate`): with two busy processes
beside it, then without.

Writes reports/gate_steadiness.json (each run's judged figures, the throttled run's own wall
times beside them, how busy the host was) and reports/gate_steadiness.md, the table `make docs`
puts in the gate's docs. The busy run goes first so reports/gate.json ends as the quieter run's.
The host is never truly idle on a shared machine: each run records the share of its time in
which some task waited for a CPU (/proc/pressure/cpu) and the host's busy share (/proc/stat).

    python -m benchmarks.gate_steadiness        (make gate-steadiness)
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.gate.host import Reading
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import read_json

BUSY_PROCESSES = 2
BUSY_LOOP = "while True: pass"
MAX_RATIO = 1.3  # every judged timing within 30% of the quieter run's
GATE_TIMEOUT_SECONDS = 900
TIMINGS = (
    "cold_start_seconds",
    "latency_p95_ms",
    "latency_p99_ms",
    "throughput_rps",
    "sustainable_rps",
    "health_latency_saturated_seconds",
)


@contextlib.contextmanager
def busy_processes(count: int = BUSY_PROCESSES):
    """`count` processes spinning on the CPU beside the block, as on a shared CI runner."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_gate(workspace: Workspace, busy: int) -> dict:
    """One gate run with `busy` spinning processes beside it: its verdict and the host's load."""
    with busy_processes(busy):
        before = Reading.now(None)
        completed = subprocess.run(  # as the acceptance runs it: DVC's gate stage, forced
            ["dvc", "repro", "-f", "-s", "gate"],
            cwd=REPO_ROOT,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=GATE_TIMEOUT_SECONDS,
        )
        after = Reading.now(None)
    verdict = read_json(workspace.report_path("gate"))
    wall = after.at - before.at
    total = after.total_jiffies - before.total_jiffies
    figures = verdict.get("figures", {})
    # The gate's own keepers (pipeline.gate.host) ran while it measured the costs: their CPU
    # is not the host's other work.
    keeper_ticks = figures.get("cost", {}).get("keeper_cpu_seconds", 0) * os.sysconf("SC_CLK_TCK")
    return {
        "busy_processes": busy,
        "exit_code": completed.returncode,
        "passed": bool(verdict.get("passed")),
        "reason": verdict.get("reason"),
        "wall_seconds": round(wall, 1),
        "host_cpu_wait_share": round((after.host_wait_s - before.host_wait_s) / wall, 3)
        if before.host_wait_s is not None
        else None,
        "host_busy_share": round(
            (after.busy_jiffies - before.busy_jiffies - keeper_ticks) / total, 3
        )
        if total
        else None,
        "judged": {
            name: verdict["measures"][name]["value"]
            for name in TIMINGS
            if name in verdict.get("measures", {})
        },
        "throttled": figures.get("throttled", {}),
        "cost": figures.get("cost", {}),
        "interference": figures.get("interference", {}),
        "host_busy": verdict.get("host_busy", []),
    }


def comparison(quiet: dict, busy: dict) -> dict:
    """Each judged timing in both runs, the ratio busy/quiet, and whether it is within 30%."""
    rows = {}
    for name in TIMINGS:
        a, b = quiet["judged"].get(name), busy["judged"].get(name)
        if a is None or b is None:
            continue
        ratio = b / a if a else float("inf")
        rows[name] = {
            "quiet": a,
            "busy": b,
            "ratio": round(ratio, 3),
            "within": 1 / MAX_RATIO <= ratio <= MAX_RATIO,
        }
    return rows


def markdown(record: dict) -> str:
    quiet, busy = record["runs"]["quiet"], record["runs"]["busy"]
    lines = [
        f"| judged figure | quiet host | {BUSY_PROCESSES} busy processes beside it | ratio "
        "| throttled run, quiet | throttled run, busy |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in record["judged"].items():
        lines.append(
            f"| {name} | {row['quiet']} | {row['busy']} | {row['ratio']} "
            f"| {quiet['throttled'].get(name, '')} | {busy['throttled'].get(name, '')} |"
        )
    for label, run in (("quiet", quiet), ("busy", busy)):
        lines.append(
            f"| host: tasks waiting for a CPU ({label}; the gate's keepers included) | | | | "
            f"{(run['host_cpu_wait_share'] or 0) * 100:.0f}% of the run | "
            f"host busy {(run['host_busy_share'] or 0) * 100:.0f}% |"
        )
    lines.append("")
    lines.append(
        f"Both runs passed: {quiet['passed'] and busy['passed']}; every judged figure within "
        f"30%: {all(row['within'] for row in record['judged'].values())}. Measured "
        f"{record['measured_at']} (`make gate-steadiness`)."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    workspace = Workspace.from_env()
    busy = run_gate(workspace, BUSY_PROCESSES)
    quiet = run_gate(workspace, 0)
    record = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": read_json(workspace.report_path("gate")).get("machine"),
        "runs": {"quiet": quiet, "busy": busy},
        "judged": comparison(quiet, busy),
    }
    record["steady"] = (
        quiet["passed"] and busy["passed"] and all(r["within"] for r in record["judged"].values())
    )
    out = Path(workspace.reports_dir)
    (out / "gate_steadiness.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "gate_steadiness.md").write_text(markdown(record))
    print(markdown(record))
    return 0 if record["steady"] else 1


if __name__ == "__main__":
    sys.exit(main())
