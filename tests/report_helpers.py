"""Verdicts in the stages' formats for the release report's tests, a repository whose main
holds a base to compare against, and the report run on it."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from clones import git

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.verdicts import at_least, at_most, write_verdict
from service.bundle import sha256_of

CANDIDATE_MODEL = b"candidate model bytes"
PLANS = [
    {"name": "free", "memory_mb": 512, "cpu_share": 0.1, "price_usd_month": 0},
    {"name": "starter", "memory_mb": 512, "cpu_share": 0.5, "price_usd_month": 7},
    {"name": "standard", "memory_mb": 2048, "cpu_share": 1, "price_usd_month": 25},
]


def verdicts(sha256: str, *, peak_mb=60.4, mean_diff=4.4e-08, p95_ms=7.72, cold_s=0.162):
    """convert, parity and gate verdicts in the stages' formats (the gate's with its series)."""
    seconds = [round(0.25 * i, 2) for i in range(40)]
    usage = [min(peak_mb, 20 + 3 * i) for i in range(40)]
    return {
        "convert": {
            "quantization": "none",
            "passed": True,
            "candidate_sha256": sha256,
            "op_count": 7,
            "sizes_bytes": {"source_model": 2976130, "tflite": 1030416},
        },
        "parity": {
            "passed": True,
            "candidate_sha256": sha256,
            "measures": {
                "max_abs_diff": at_most(3.9e-06, 1e-4),
                "mean_abs_diff": at_most(mean_diff, 1e-5),
                "top1_agreement": at_least(1.0, 0.99),
            },
            "accuracy": {"keras": 0.875, "tflite": 0.875},
        },
        "gate": {
            "plan": PLANS[0],
            "limits": {
                "memory": {"limit_mb": 512, "enforced": True, "backend": "cgroup-v1"},
                "cpu": {"share": 0.1, "enforced": True, "backend": "cgroup-v1"},
            },
            "series": {
                "memory": {"seconds": seconds, "usage_mb": usage},
                "latency_ms": {
                    "edges": [0, 2, 4, 6, 8, 10, 12],
                    "counts": [3, 40, 180, 120, 50, 7],
                },
            },
            "plan_fit": {
                "target_rps": 5,
                "plans": [
                    {**PLANS[0], "fits": True, "why": "", "workers": 1, "instances": 1},
                    {**PLANS[1], "fits": True, "why": "", "workers": 2, "instances": 1},
                    {
                        **PLANS[2],
                        "fits": False,
                        "why": "costs more than needed",
                        "workers": 4,
                        "instances": 1,
                    },
                ],
                "recommended": {"plan": "free", "workers": 1, "instances": 1},
            },
            "measures": {
                "peak_memory_mb": at_most(peak_mb, 450),
                "cold_start_seconds": at_most(cold_s, 5.0),
                "latency_p95_ms": at_most(p95_ms, 250),
            },
            "figures": {"latency_p50_ms": 5.3},
            "candidate_sha256": sha256,
        },
    }


def write_reports(workspace: Workspace, reports: dict) -> None:
    """Each verdict through the stages' own writer, plus parity's two plot tables."""
    for stage, verdict in reports.items():
        verdict = copy.deepcopy(verdict)
        verdict["passed"] = verdict.get("passed", True) and all(
            m["passed"] for m in verdict.get("measures", {}).values()
        )
        if not verdict["passed"] and stage == "gate":
            verdict["reason"] = "the kernel OOM-killed 2 process(es) at a peak of 530 MB"
        write_verdict(workspace, stage, verdict)
    labels = ["adios", "agua", "ayuda"]
    per_class = ["label,agreement,keras_accuracy,tflite_accuracy,samples"]
    per_class += [f"{label},{1 - i * 0.02:.4f},0.8,0.8,20" for i, label in enumerate(labels)]
    per_class.append("casa,,,,0")  # a class with no held-out samples: no figures, no bar
    (workspace.reports_dir / "parity_per_class.csv").write_text("\n".join(per_class) + "\n")
    rng = np.random.default_rng(1)
    keras = rng.uniform(0.3, 1.0, 60)
    confidence = ["sample,keras_confidence,tflite_confidence"]
    confidence += [f"{i},{k:.6f},{k + rng.normal(0, 0.01):.6f}" for i, k in enumerate(keras)]
    (workspace.reports_dir / "parity_confidence.csv").write_text("\n".join(confidence) + "\n")


def report_base(root: Path) -> Workspace:
    """A git repository at `root` with a candidate on disk and main's reports committed (the
    base the report compares against)."""
    workspace = Workspace(root)
    workspace.candidate_dir.mkdir(parents=True)
    (workspace.candidate_dir / "model.tflite").write_bytes(CANDIDATE_MODEL)
    shutil.copy(REPO_ROOT / "params.yaml", workspace.params_path)
    git(workspace.root, "init", "-q", "-b", "main")
    git(workspace.root, "config", "user.email", "report-test@example.com")
    git(workspace.root, "config", "user.name", "Report Test")
    write_reports(workspace, verdicts("b" * 64, peak_mb=58.0, mean_diff=4.1e-08, p95_ms=8.5))
    git(workspace.root, "add", "reports", "params.yaml")
    git(workspace.root, "commit", "-qm", "main's promoted candidate")
    return workspace


def candidate_sha256(workspace: Workspace) -> str:
    """The sha256 of the candidate on disk."""
    return sha256_of(workspace.candidate_dir / "model.tflite")


def run_report(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.report <args>` on the workspace."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.report", *args],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def markdown(workspace: Workspace, *args: str) -> str:
    """release.md as `python -m pipeline.report <args>` writes it (the run must pass)."""
    completed = run_report(workspace, *args)
    assert completed.returncode == 0, completed.stderr
    assert "release.html" in completed.stdout
    return (workspace.reports_dir / "release.md").read_text()
