"""`make bench-peers` on a real small run of ours: its figures, table, chart and docs step.

MLServer and BentoML are left out here: each needs its own venv from PyPI and starts in tens of
seconds to minutes at 0.1 CPU, so they run in `make bench-peers` alone.
"""

import os
import subprocess
import sys

import pytest
from workspaces import run_stage, workspace_like

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.verdicts import read_json

SMALL = {
    "peer_requests": 30,
    "peer_requests_quota": 4,
    "peer_clients": 4,
    "peer_warmup_requests": 3,
    "peer_bare_invokes": 50,
    "peer_ours_own_venv": False,  # the venv path runs in `make bench-peers`; this stays offline
}


def run_peers(workspace, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", *arguments],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        # Bounded, not a latency bound: inside a 0.1 CPU group a shared host spends 1x to 100x
        # more CPU on the same work from one hour to the next (pipeline/gate/cost.py).
        timeout=900,
    )


@pytest.mark.slow
def test_ours_is_measured_unthrottled_and_at_the_plans_share_and_reaches_the_docs(
    demo_workspace, tmp_path
):
    workspace = workspace_like(demo_workspace, tmp_path / "ws", bench=SMALL)
    completed = run_peers(workspace, "--servers", "ours")
    assert completed.returncode == 0, completed.stderr[-3000:]

    result = read_json(workspace.reports_dir / "bench" / "peers.json")
    rows = {row["cpu"]: row for row in result["rows"]}
    assert set(rows) == {"unthrottled", "0.1 CPU"}
    for setting, count in (("unthrottled", 30), ("0.1 CPU", 4)):
        row = rows[setting]
        assert row["server"] == "ours (render.yaml)" and row["answer_matches"], row
        assert row["request_bytes"] == 65 * 243 * 4  # one raw float32 sample
        for load in (row["lone"], row["concurrent"]):
            assert load["answered"] == count and load["failed"] == 0, load
            assert load["ratio"] == round(load["cpu_ms"] / row["bare_invoke_cpu_ms"], 2)
            # A served request costs at least the invoke it wraps (the same model, same share).
            assert load["ratio"] >= 0.8, load
        assert 10 < row["peak_mb"] < 512 and row["cold_start_s"] > 0
    assert rows["0.1 CPU"]["throttled_periods"] > 0  # the quota was enforced, not just named
    assert rows["unthrottled"]["throttled_periods"] == 0
    assert result["install_seconds"] == {}  # ours needs no peer venv

    table = (workspace.reports_dir / "bench" / "peers.md").read_text()
    unthrottled = rows["unthrottled"]
    assert (
        f"| ours (render.yaml) | unthrottled | {65 * 243 * 4} | {unthrottled['cold_start_s']} "
        f"| {unthrottled['peak_mb']} |" in table
    )
    assert f"{unthrottled['lone']['cpu_ms']} ({unthrottled['lone']['ratio']}x)" in table
    chart = (workspace.reports_dir / "bench" / "peers.png").read_bytes()
    assert chart.startswith(b"\x89PNG")

    readme = workspace.root / "README.md"
    readme.write_text("# x\n<!-- bench-peers:start -->\nSTALE\n<!-- bench-peers:end -->\n")
    docs = run_stage("pipeline.report.docs", workspace)
    assert "updated: README.md" in docs.stdout and "docs/bench-peers.png" in docs.stdout
    assert table in readme.read_text() and "STALE" not in readme.read_text()
    assert (workspace.root / "docs" / "bench-peers.png").read_bytes() == chart


def test_an_unknown_server_is_refused_by_name(tmp_path):
    completed = run_peers(tmp_path, "--servers", "ours,triton")
    assert completed.returncode == 1
    assert "unknown server(s) ['triton']; choose from ours, mlserver, bentoml" in completed.stderr
