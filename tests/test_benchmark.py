"""The benchmark, on the small demo with small counts, so `make bench` keeps working."""

import os
import subprocess
import sys

import pytest
from workspaces import workspace_like

from pipeline.cgroups import existing_groups
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.verdicts import read_json

pytestmark = pytest.mark.slow


def test_the_benchmark_measures_every_path_and_writes_table_and_chart(checked_workspace, tmp_path):
    settings = {
        "predictions": 5,
        "http_requests": 5,
        "quantizations": ["none", "dynamic"],
        "tflite_runtime": True,
        "cpu_requests": 40,
        "cpu_requests_quota": 15,
    }
    workspace = workspace_like(checked_workspace, tmp_path / "ws", bench=settings)
    readme = workspace.root / "README.md"
    stale_table = "STALE TABLE FROM AN EARLIER RUN"
    readme.write_text(f"# x\n<!-- benchmark:start -->\n{stale_table}\n<!-- benchmark:end -->\n")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = read_json(workspace.reports_dir / "benchmark.json")
    rows = {row["path"]: row for row in result["rows"]}
    assert set(rows) == {
        "keras model.predict",
        "tf.function",
        "bare interpreter none",
        "ai-edge-litert none",
        "ai-edge-litert dynamic",
        "tflite-runtime none",
    }
    for name in (
        "keras model.predict",
        "bare interpreter none",
        "ai-edge-litert none",
        "tflite-runtime none",
    ):
        row = rows[name]
        assert row["enforced"] and row["peak_mb_1"] > 10 and row["p50_ms"] > 0, row
    assert rows["keras model.predict"]["peak_mb_1"] > rows["ai-edge-litert none"]["peak_mb_1"]
    assert rows["tflite-runtime none"]["runtime"] == "tflite-runtime"
    assert rows["ai-edge-litert none"]["http_1w"]["http_float32_p50_ms"] > 0
    assert rows["ai-edge-litert none"]["http_1w"]["cold_start_s"] > 0
    table = (workspace.reports_dir / "benchmark.md").read_text()
    assert "Service against the bare interpreter" in table
    assert "| ai-edge-litert dynamic |" in table
    # The docs are not the benchmark's to write (`make docs` copies the tables).
    assert readme.read_text().count(stale_table) == 1 and table not in readme.read_text()
    cpu = result["cpu_per_request"]["settings"]
    assert set(cpu) == {"full speed", "0.1 CPU"}
    for figures in cpu.values():
        assert figures["bare_invoke_cpu_ms"] > 0
        for body_format in ("float32", "json"):
            assert figures[body_format]["cpu_ms"] > 0 and figures[body_format]["ratio"] > 0
    assert "| 0.1 CPU |" in table and "target <= 1.25" in table
    png = (workspace.root / "docs" / "benchmark.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert existing_groups("bench") == []
