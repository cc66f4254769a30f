"""The release report: the markdown a reviewer reads, the page as headless Chromium draws it."""

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.report.html import CHART_FRAME, TABLE_RULE
from pipeline.report.screenshot import read_rgb, screenshot
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


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """A git repository with a candidate on disk and main's reports committed (the base)."""
    workspace = Workspace(tmp_path / "repo")
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
    return sha256_of(workspace.candidate_dir / "model.tflite")


def run_report(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.report", *args],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def markdown(workspace: Workspace, *args: str) -> str:
    completed = run_report(workspace, *args)
    assert completed.returncode == 0, completed.stderr
    assert "release.html" in completed.stdout
    return (workspace.reports_dir / "release.md").read_text()


def test_a_passing_candidate_against_main_shows_each_figure_and_its_direction(workspace):
    write_reports(workspace, verdicts(candidate_sha256(workspace), peak_mb=75.2))
    text = markdown(workspace, "--base", "main")
    assert text.startswith("## ✅ Release report: PASSED\n")
    assert f"Candidate {candidate_sha256(workspace)[:12]}, against main (" in text
    assert "**Judged figures: 2 toward limit, 1 away from limit, 3 unchanged.**" in text
    assert "| stage | figure | limit | main | candidate | change | vs limit |" in text
    assert "| gate | peak_memory_mb | ≤ 450 | 58 | 75.2 | +17.2 (+29.7%) | toward limit |" in text
    assert (
        "| gate | latency_p95_ms | ≤ 250 | 8.5 | 7.72 | -0.78 (-9.2%) | away from limit |" in text
    )
    # Significant digits survive: a mean difference of 4.4e-08 is not 0.0.
    assert "| parity | mean_abs_diff | ≤ 1e-05 | 4.1e-08 | 4.4e-08 | +3e-09 (+7.3%) |" in text
    assert "| parity | top1_agreement | ≥ 0.99 | 1 | 1 | 0 | unchanged |" in text
    assert "| convert | tflite_mb |  | 1.03 | 1.03 | 0 |  |" in text
    assert "For 5 requests/s: free, 1 worker(s) x 1 instance(s) (main: free," in text
    assert "| standard | 2048 MB | 1 | $25 | ❌ no | 4 x 1 | costs more than needed |" in text
    assert "Why it failed" not in text


def test_a_failing_candidate_says_why_and_marks_the_figure_past_its_limit(workspace):
    write_reports(workspace, verdicts(candidate_sha256(workspace), peak_mb=530.0))
    text = markdown(workspace, "--base", "main")
    assert text.startswith("## ❌ Release report: FAILED\n")
    assert "| gate | ❌ FAILED |" in text
    assert "### Why it failed" in text
    assert "**Judged figures: 1 past limit, " in text
    assert "- **gate**: the kernel OOM-killed 2 process(es) at a peak of 530 MB" in text
    assert "- **gate**: peak_memory_mb 530 (needs <= 450)" in text
    assert "| gate | peak_memory_mb | ≤ 450 | 58 | ❌ 530 | +472 (+813.8%) | past limit |" in text


def test_without_a_base_the_candidate_is_shown_alone(workspace):
    write_reports(workspace, verdicts(candidate_sha256(workspace)))
    text = markdown(workspace)
    assert "no base given: the candidate's figures alone" in text
    assert "| stage | figure | limit | candidate |" in text
    assert "| parity | mean_abs_diff | ≤ 1e-05 | 4.4e-08 |" in text
    assert "| gate | ✅ PASSED |" in text
    assert "change" not in text


def test_a_failing_candidate_without_a_base(workspace):
    write_reports(workspace, verdicts(candidate_sha256(workspace), cold_s=7.5))
    text = markdown(workspace)
    assert text.startswith("## ❌ Release report: FAILED\n")
    assert "- **gate**: cold_start_seconds 7.5 (needs <= 5)" in text
    assert "| gate | cold_start_seconds | ≤ 5 | ❌ 7.5 |" in text


def test_a_stage_the_base_never_ran_reads_new(workspace):
    git(workspace.root, "rm", "-q", "reports/gate.json")
    git(workspace.root, "commit", "-qm", "main without a gate")
    write_reports(workspace, verdicts(candidate_sha256(workspace)))
    text = markdown(workspace, "--base", "main")
    assert "| gate | peak_memory_mb | ≤ 450 | new | 60.4 |  |  |" in text
    assert re.search(r"^\| gate \| .* \| new \|$", text, re.M), text  # the verdicts' table


def test_an_unknown_base_is_refused_with_the_fix(workspace):
    write_reports(workspace, verdicts(candidate_sha256(workspace)))
    completed = run_report(workspace, "--base", "origin/no-such-branch")
    assert completed.returncode == 2
    assert "'origin/no-such-branch' is not a commit in this repository" in completed.stderr
    assert "git fetch origin main" in completed.stderr
    assert not (workspace.reports_dir / "release.md").exists()


def test_the_page_is_self_contained_and_says_which_chart_data_is_missing(workspace):
    reports = verdicts(candidate_sha256(workspace))
    del reports["gate"]["series"], reports["gate"]["plan_fit"]  # today's gate verdict
    write_reports(workspace, reports)
    markdown(workspace, "--base", "main")
    page = (workspace.reports_dir / "release.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    # The two parity charts, and cold start: the gate's measures alone draw it.
    assert page.count('src="data:image/png;base64,') == 3
    assert "the gate&#x27;s verdict has no memory time series" in page
    assert "the gate&#x27;s verdict has no latency histogram" in page


def boxes_of_colour(image: np.ndarray, colour: str, min_width: int, min_height: int):
    """Bounding boxes (top, bottom, left, right) of connected areas drawn in `colour`."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    labelled, _ = ndimage.label(np.all(image == rgb, axis=2))
    boxes = []
    for found in ndimage.find_objects(labelled):
        top, bottom = found[0].start, found[0].stop
        left, right = found[1].start, found[1].stop
        if right - left >= min_width and bottom - top >= min_height:
            boxes.append((top, bottom, left, right))
    return boxes


def test_the_page_renders_its_table_and_six_charts_in_chromium(workspace, tmp_path):
    write_reports(workspace, verdicts(candidate_sha256(workspace), peak_mb=75.2))
    markdown(workspace, "--base", "main")
    png = tmp_path / "page.png"
    screenshot(workspace.reports_dir / "release.html", png)
    image = read_rgb(png)
    # The figures table: one grid of cell rules, wide and tall, with dark text inside.
    tables = boxes_of_colour(image, TABLE_RULE, min_width=600, min_height=300)
    assert tables, "no rendered figures table in the screenshot"
    top, bottom, left, right = tables[0]
    text = np.all(image[top:bottom, left:right] < 100, axis=2).mean()
    assert text > 0.01, f"the table has almost no text ({text:.2%} dark pixels)"
    # Six charts, each framed, each with its data drawn: axes, grid and text are grey, the
    # data (bars, points, lines) coloured; an empty chart has next to no coloured pixel.
    charts = boxes_of_colour(image, CHART_FRAME, min_width=500, min_height=300)
    assert len(charts) == 6, charts
    for top, bottom, left, right in charts:
        inside = image[top + 3 : bottom - 3, left + 3 : right - 3]
        coloured = (inside.max(axis=2) - inside.min(axis=2) > 60).mean()
        assert coloured > 0.004, f"chart at {(top, left)} looks blank ({coloured:.2%} coloured)"


def test_the_pipeline_workflow_puts_the_report_in_the_step_summary_and_uploads_the_page():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/pipeline.yml").read_text())
    steps = workflow["jobs"]["gates"]["steps"]
    report_step = next(step for step in steps if "pipeline.report" in step.get("run", ""))
    assert report_step["if"] == "always()"
    assert 'base="origin/$BASE_REF"' in report_step["run"]
    assert 'cat reports/release.md >> "$GITHUB_STEP_SUMMARY"' in report_step["run"]
    uploads = [step["with"]["path"] for step in steps if "upload-artifact" in step.get("uses", "")]
    assert any("reports/release.html" in path or "reports/" in path for path in uploads)
