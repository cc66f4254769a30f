"""Convert and check the current inputs once per quantization mode, side by side in one run.

Writes reports/quantization.json and reports/quantization.md only (committed, so the docs'
table can be checked against them on any clone); `make docs` copies the table into
docs/pipeline.md. Not a DVC stage: it answers "which mode should I ship?" and runs the real
stages in scratch workspaces.
Each mode prints its progress as it goes; each table row is one line, and a failure's whole
message is listed under the table.
"""

import os
import subprocess
import sys
import time

from pipeline.gate.machine import this_machine
from pipeline.gate.preflight import bundle_mb
from pipeline.params import QUANTIZATIONS, load_params
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.scratch import scratch_workspace
from pipeline.verdicts import read_json, write_json

# CPU per invoke within this fraction of the cheapest passing mode counts as a tie, which the
# smaller bundle wins: the difference is below what one run on a shared machine can resolve.
CPU_TIE_FRACTION = 0.10
SHORT_REASON_CHARS = 40


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def short_reason(text: str) -> str:
    """A failure in a few words: its first clause, cut at a word."""
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    first = first.split(": ")[0] if len(first) > SHORT_REASON_CHARS else first
    if len(first) > SHORT_REASON_CHARS:
        first = first[:SHORT_REASON_CHARS].rsplit(" ", 1)[0] + "..."
    return first


def invoke_cost_ms(model_path, count: int, env: dict) -> float | None:
    """CPU ms per invoke, measured in its own process (None when the interpreter fails)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.conversion.invoke_cost", str(model_path), str(count), "3"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if completed.returncode != 0:
        return None
    return float(completed.stdout.strip().splitlines()[-1])


def run_mode(workspace: Workspace, quantization: str, invokes: int, position: str) -> dict:
    """Convert, parity, and the CPU of one invoke for one mode, in its own scratch workspace."""
    scratch = scratch_workspace(
        workspace, f"quantization/{quantization}", convert={"quantization": quantization}
    )
    env = {**os.environ, WORKSPACE_ENV: str(scratch.root)}
    row = {"quantization": quantization}
    for stage in ("convert", "parity"):
        say(f"[{position}] {quantization}: {stage}...")
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", f"pipeline.stages.{stage}"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        row[f"{stage}_seconds"] = round(time.perf_counter() - started, 1)
        verdict = read_json(scratch.report_path(stage))
        # The scratch workspace's fingerprint names this machine's paths; the verdict is kept
        # (in git, as the docs' source) without it.
        row[stage] = {key: value for key, value in verdict.items() if key != "inputs_fingerprint"}
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines()
            row["failure"] = row[stage].get("reason") or (lines[-1] if lines else "failed")
            row["failed_stage"] = stage
            say(f"[{position}] {quantization}: {stage} failed: {short_reason(row['failure'])}")
            break
    if row["convert"].get("passed"):
        row["bundle_mb"] = round(bundle_mb(scratch.candidate_dir), 2)
        say(f"[{position}] {quantization}: CPU per invoke ({invokes} invokes, best of 3)...")
        row["cpu_ms_per_invoke"] = invoke_cost_ms(
            scratch.candidate_dir / "model.tflite", invokes, env
        )
    say(f"[{position}] {quantization}: done")
    return row


def recommend(rows: list[dict]) -> tuple[str | None, str]:
    """The mode to ship and why: parity passed, least CPU per invoke, a tie to the smaller."""
    passing = [r for r in rows if r.get("parity", {}).get("passed") and r.get("cpu_ms_per_invoke")]
    if not passing:
        return None, "no mode passed parity with a measurable invoke: keep the current mode"
    cheapest = min(row["cpu_ms_per_invoke"] for row in passing)
    tied = [r for r in passing if r["cpu_ms_per_invoke"] <= cheapest * (1 + CPU_TIE_FRACTION)]
    best = min(tied, key=lambda row: row["bundle_mb"])
    why = (
        f"it passes parity and costs {best['cpu_ms_per_invoke']:.2f} ms of CPU per invoke "
        f"(what a 0.1 CPU plan pays per sample), "
    )
    why += (
        f"within {CPU_TIE_FRACTION:.0%} of the cheapest passing mode, with the smallest bundle "
        f"of those ({best['bundle_mb']:.2f} MB)"
        if len(tied) > 1
        else "the least of every mode that passes parity"
    )
    return best["quantization"], why


def markdown_table(rows: list[dict], measured: str = "") -> str:
    """The table docs/pipeline.md shows, a line per mode; `measured` names where and when."""
    lines = [
        "| quantization | converts | bundle (gate) | CPU per invoke | max abs diff | "
        "top-1 agreement | accuracy (Keras -> TFLite) | parity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in rows:
        if row.get("failure"):
            notes.append(f"{row['quantization']} ({row['failed_stage']}): {row['failure']}")
            marker = f" [{len(notes)}]"
        else:
            marker = ""
        if not row["convert"].get("passed"):
            reason = short_reason(row.get("failure", "failed"))
            lines.append(f"| {row['quantization']} | no: {reason}{marker} | | | | | | |")
            continue
        parity = row.get("parity", {})
        measures, accuracy = parity.get("measures", {}), parity.get("accuracy", {})
        cpu = row.get("cpu_ms_per_invoke")
        lines.append(
            f"| {row['quantization']} | yes | {row['bundle_mb']:.2f} MB "
            f"| {f'{cpu:.2f} ms' if cpu else 'interpreter failed'} "
            f"| {measures.get('max_abs_diff', {}).get('value', float('nan')):.1e} "
            f"| {measures.get('top1_agreement', {}).get('value', float('nan')):.3f} "
            f"| {accuracy.get('keras', float('nan')):.3f} -> "
            f"{accuracy.get('tflite', float('nan')):.3f} "
            f"| {'passed' if parity.get('passed') else 'FAILED'}{marker} |"
        )
    choice, why = recommend(rows)
    lines += ["", f"**Recommended: {choice}**: {why}." if choice else f"**{why}.**"]
    if notes:
        lines += ["", *(f"[{i}] {note}" for i, note in enumerate(notes, 1))]
    if measured:
        lines += ["", measured]
    return "\n".join(lines) + "\n"


def compare_quantization(workspace: Workspace) -> None:
    """Every mode, one after another on this machine; the table goes to reports/ alone."""
    invokes = load_params(workspace).bench.quantization_invokes
    rows = [
        run_mode(workspace, quantization, invokes, f"{index}/{len(QUANTIZATIONS)}")
        for index, quantization in enumerate(QUANTIZATIONS, 1)
    ]
    choice, why = recommend(rows)
    machine = this_machine(cgroup_backend="")
    measured = (
        f"Measured {machine['measured_at']} on {machine['cpu_model']}, {machine['cores']} CPUs "
        "(`make quantization`)."
    )
    write_json(
        workspace.report_path("quantization"),
        {"modes": rows, "recommended": choice, "why": why, "measured": measured},
    )
    table = markdown_table(rows, measured)
    (workspace.reports_dir / "quantization.md").write_text(table)
    print(table)


if __name__ == "__main__":
    compare_quantization(Workspace.from_env())
