"""Convert and check the current inputs once per quantization mode, side by side in one run.

Writes reports/quantization.json and reports/quantization.md only: `make docs` copies the table
into docs/pipeline.md when you choose to, so running this never dirties a tracked file. Not a DVC
stage: it answers "which mode should I ship?" and runs the real stages in scratch workspaces.
"""

import os
import subprocess
import sys
import time

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.scratch import scratch_workspace
from pipeline.stages.convert import QUANTIZATIONS
from pipeline.verdicts import read_json, write_json


def run_mode(workspace: Workspace, quantization: str) -> dict:
    """Run convert then parity for one mode in its own scratch workspace."""
    scratch = scratch_workspace(
        workspace, f"quantization/{quantization}", convert={"quantization": quantization}
    )
    env = {**os.environ, WORKSPACE_ENV: str(scratch.root)}
    row = {"quantization": quantization}
    for stage in ("convert", "parity"):
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", f"pipeline.stages.{stage}"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        row[f"{stage}_seconds"] = time.perf_counter() - started
        row[stage] = read_json(scratch.report_path(stage))
        if completed.returncode != 0:
            row["failure"] = completed.stderr.strip().splitlines()[-1]
            break
    return row


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| quantization | converts | .tflite size | conversion time | max abs diff | "
        "top-1 agreement | accuracy (Keras -> TFLite) | parity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        convert = row["convert"]
        if not convert.get("passed"):
            lines.append(
                f"| {row['quantization']} | no: {convert.get('reason', '?')} | | | | | | |"
            )
            continue
        parity = row.get("parity", {})
        measures = parity.get("measures", {})
        accuracy = parity.get("accuracy", {})
        lines.append(
            f"| {row['quantization']} | yes | {convert['sizes_bytes']['tflite'] / 1e6:.2f} MB "
            f"| {row['convert_seconds']:.1f} s "
            f"| {measures.get('max_abs_diff', {}).get('value', float('nan')):.1e} "
            f"| {measures.get('top1_agreement', {}).get('value', float('nan')):.3f} "
            f"| {accuracy.get('keras', float('nan')):.3f} -> "
            f"{accuracy.get('tflite', float('nan')):.3f} "
            f"| {'passed' if parity.get('passed') else 'FAILED'} |"
        )
    return "\n".join(lines) + "\n"


def compare_quantization(workspace: Workspace) -> None:
    """Every mode, one after another on this machine; the table goes to reports/ alone."""
    rows = [run_mode(workspace, quantization) for quantization in QUANTIZATIONS]
    write_json(workspace.report_path("quantization"), rows)
    table = markdown_table(rows)
    (workspace.reports_dir / "quantization.md").write_text(table)
    print(table)


if __name__ == "__main__":
    compare_quantization(Workspace.from_env())
