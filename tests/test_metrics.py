"""Compact metrics: what `dvc metrics show` prints, from the verdicts the stages write."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.metrics import compact, limits, significant
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import at_least, at_most, write_verdict

SHA256 = "5e4bcfba37b9390d18dc05bbc5d72c700aaaaa4f0e5b49a1cacde9e46ae3b743"


def parity_verdict(**overrides) -> dict:
    measures = {
        "max_abs_diff": at_most(3.933906555175781e-06, 1e-4),
        "mean_abs_diff": at_most(4.3250106820380554e-08, 1e-5),
        "top1_agreement": at_least(1.0, 0.99),
        "accuracy_drop": at_most(0.0, 0.005),
    }
    measures.update(overrides)
    passed = all(m["passed"] for m in measures.values())
    return {"passed": passed, "candidate_sha256": SHA256, "measures": measures}


def gate_verdict(**extra) -> dict:
    return {
        "passed": True,
        "candidate_sha256": SHA256,
        "measures": {
            "peak_memory_mb": at_most(60.4, 450),
            "oom_kills": at_most(0, 0),
            "cold_start_seconds": at_most(3.512, 5.0),
            "latency_p95_ms": at_most(233.0, 250),
            "throughput_rps": at_least(709.5, 20),
        },
        **extra,
    }


def test_compact_keeps_significant_digits_where_dvc_rounds_to_five_decimals():
    figures = compact("parity", parity_verdict())
    assert figures == {"passed": True, "diff_ppm": 3.93, "agree": 1.0}
    assert limits("parity", parity_verdict()) == {"diff_ppm": "<= 100", "agree": ">= 0.99"}
    assert significant(4.3250106820380554e-08) == 4.33e-08


def test_a_failed_measure_outside_the_key_figures_is_still_shown():
    verdict = parity_verdict(accuracy_drop=at_most(0.02, 0.005))
    assert compact("parity", verdict)["accuracy_drop"] == 0.02
    assert compact("parity", verdict)["passed"] is False
    assert limits("parity", verdict)["accuracy_drop"] == "<= 0.005"


def test_the_gate_shows_the_plan_it_measured_on_and_the_one_it_recommends():
    assert "fit" not in compact("gate", gate_verdict())
    fit = {"target_rps": 5, "plans": [], "recommended": {"plan": "starter", "workers": 2}}
    on_free = gate_verdict(plan_fit=fit, plan={"name": "free", "memory_mb": 512})
    figures = compact("gate", on_free)
    assert (figures["ran_on"], figures["fit"]) == ("free", "starter")
    none = compact("gate", gate_verdict(plan_fit={**fit, "recommended": None}))
    assert none["fit"] == "none" and "ran_on" not in none


def test_a_failed_run_without_measures_still_writes_compact_files(tmp_path):
    workspace = Workspace(tmp_path)
    write_verdict(workspace, "parity", {"passed": False, "reason": "no candidate"})
    assert json.loads((tmp_path / "reports/metrics/parity.json").read_text()) == {"passed": False}
    assert json.loads((tmp_path / "reports/limits/parity.json").read_text()) == {}


@pytest.fixture
def dvc_project(tmp_path) -> Path:
    """A DVC project with this repository's dvc.yaml and params.yaml, and no git."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def dvc_metrics_show(project: Path, *targets: str) -> list[str]:
    completed = subprocess.run(
        [Path(sys.executable).parent / "dvc", "metrics", "show", *targets],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.splitlines()


def test_dvc_metrics_show_fits_a_terminal_and_prints_the_limits_on_request(dvc_project):
    workspace = Workspace(dvc_project)
    write_verdict(workspace, "convert", {"passed": True, "candidate_sha256": SHA256})
    write_verdict(workspace, "parity", parity_verdict())
    fit = {"target_rps": 5, "plans": [], "recommended": {"plan": "standard", "workers": 4}}
    write_verdict(workspace, "gate", gate_verdict(plan_fit=fit))
    lines = dvc_metrics_show(dvc_project)
    assert max(map(len, lines)) <= 120, "\n".join(lines)
    table = columns(lines)
    assert set(table) == {
        f"reports/metrics/{stage}.json" for stage in ("convert", "parity", "gate")
    }
    assert table["reports/metrics/convert.json"]["sha"] == "5e4bcfba"
    assert table["reports/metrics/gate.json"]["peak_mb"] == "60.4"
    assert table["reports/metrics/gate.json"]["fit"] == "standard"
    assert table["reports/metrics/parity.json"]["diff_ppm"] == "3.93"
    # Each figure's name is in one metrics file only: `dvc exp show` prints it bare.
    names = [name for row in table.values() for name, cell in row.items() if cell != "-"]
    assert sorted(set(names) - {"passed"}) == sorted(name for name in names if name != "passed")
    lines = dvc_metrics_show(dvc_project, "-R", "reports/metrics", "reports/limits")
    assert max(map(len, lines)) <= 120, "\n".join(lines)
    with_limits = columns(lines)
    assert with_limits["reports/limits/gate.json"]["peak_mb"] == "<= 450"
    assert with_limits["reports/limits/parity.json"]["agree"] == ">= 0.99"


def columns(lines: list[str]) -> dict[str, dict[str, str]]:
    """DVC's plain table as {path: {column: cell}}, cut at the header's column starts."""
    starts = [match.start() for match in re.finditer(r"\S+", lines[0])]
    names = lines[0].split()
    table = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        table[cells[0]] = dict(zip(names[1:], cells[1:], strict=True))
    return table
