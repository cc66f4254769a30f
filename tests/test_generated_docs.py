"""`make docs`: measured figures reach the README and docs/ only from the files that measured
them, and `--check` fails while one differs."""

import json
import os
import shutil
import subprocess
import sys

import yaml
from workspaces import run_stage

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace

README = "# Project\n\n<!-- quantization:start -->\nold table\n<!-- quantization:end -->\n\nEnd.\n"


def docs_workspace(tmp_path, page: str, **reports: dict) -> Workspace:
    """A folder with params.yaml, docs/page.md and the given reports/<name>.json."""
    shutil.copyfile(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(page)
    (tmp_path / "reports").mkdir()
    for name, data in reports.items():
        (tmp_path / "reports" / f"{name}.json").write_text(json.dumps(data))
    return Workspace(tmp_path)


def docs(workspace: Workspace, *arguments: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.report.docs [arguments]` on the workspace."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.report.docs", *arguments],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
    )


def test_the_generated_table_is_copied_between_the_markers_once(tmp_path):
    workspace = Workspace(tmp_path)
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "quantization.md").write_text("| mode |\n|---|\n| none |\n")
    first = run_stage("pipeline.report.docs", workspace)
    assert "updated: README.md" in first.stdout
    readme = (tmp_path / "README.md").read_text()
    assert "| none |" in readme and "old table" not in readme and readme.endswith("End.\n")
    second = run_stage("pipeline.report.docs", workspace)
    assert "the docs are up to date" in second.stdout
    assert (tmp_path / "README.md").read_text() == readme


def test_a_table_from_a_benchmark_not_run_here_is_kept_and_named(tmp_path):
    (tmp_path / "README.md").write_text(README)
    completed = run_stage("pipeline.report.docs", Workspace(tmp_path))
    assert "not updated: the quantization block: no reports/quantization.md" in completed.stdout
    assert "run `make quantization` first" in completed.stdout
    assert (tmp_path / "README.md").read_text() == README


def test_an_unknown_block_is_a_clear_error(tmp_path):
    (tmp_path / "README.md").write_text("<!-- quantisation:start -->\n<!-- quantisation:end -->\n")
    completed = run_stage("pipeline.report.docs", Workspace(tmp_path), check=False)
    assert completed.returncode == 1
    assert "README.md: no generated block is called 'quantisation'" in completed.stderr


def test_a_figure_that_differs_from_its_report_fails_the_check_until_make_docs(tmp_path):
    page = "<!-- figure: gate.measures.cold_start_seconds.value -->2.9<!-- /figure --> s\n"
    gate = {"measures": {"cold_start_seconds": {"value": 3.1}}}
    workspace = docs_workspace(tmp_path, page, gate=gate)
    assert "updated: docs/page.md" in docs(workspace).stdout
    assert "-->3.1<!--" in (tmp_path / "docs" / "page.md").read_text()
    gate["measures"]["cold_start_seconds"]["value"] = 7.25
    (tmp_path / "reports" / "gate.json").write_text(json.dumps(gate))
    stale = docs(workspace, "--check")
    assert stale.returncode == 1
    assert (
        "docs/page.md: gate.measures.cold_start_seconds.value reads '3.1', "
        "its source says '7.25'" in stale.stdout
    )
    assert "-->3.1<!--" in (tmp_path / "docs" / "page.md").read_text()  # --check changes nothing
    docs(workspace)
    assert docs(workspace, "--check").returncode == 0


def test_the_check_accepts_docs_of_the_committed_reports_beside_this_machines_own(tmp_path):
    page = "<!-- figure: gate.measures.cold_start_seconds.value -->3.1<!-- /figure --> s\n"
    gate = {"measures": {"cold_start_seconds": {"value": 3.1}}}
    workspace = docs_workspace(tmp_path, page, gate=gate)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the team's run"]):
        subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *command],
            cwd=tmp_path,
            check=True,
        )
    gate["measures"]["cold_start_seconds"]["value"] = 7.25  # `make demo` on another machine
    (tmp_path / "reports" / "gate.json").write_text(json.dumps(gate))
    own_run = docs(workspace, "--check")
    assert own_run.returncode == 0, own_run.stdout
    assert "the docs match the committed reports" in own_run.stdout
    assert "this machine's own run (reports/gate.json) differs from them" in own_run.stdout
    (tmp_path / "docs" / "page.md").write_text(page.replace("3.1", "5.0"))
    neither = docs(workspace, "--check")
    assert neither.returncode == 1
    assert "gate.measures.cold_start_seconds.value reads '5.0', its source says '7.25'" in (
        neither.stdout
    )
    docs(workspace)  # `make docs`: the docs quote this machine's run
    assert "the docs match the reports\n" in docs(workspace, "--check").stdout


def test_figures_select_list_items_and_dict_keys_and_format(tmp_path):
    page = (
        "<!-- figure: benchmark.rows[path=keras model.predict].p50_ms -->?<!-- /figure -->\n"
        "<!-- figure: gate.figures.worst_case.requests[float32, largest batch].body_bytes as mb"
        " -->?<!-- /figure -->\n"
        "<!-- figure: demo_model.parameters as , -->?<!-- /figure -->\n"
        "<!-- figure: gate.figures.worker_uss_mb.0 -->?<!-- /figure -->\n"
        "<!-- figure: benchmark.rows[path=keras model.predict].oom_2 as yesno -->?"
        "<!-- /figure -->\n"
        "<!-- figure: params.bench.cpu_targets.json -->?<!-- /figure -->\n"
    )
    benchmark = {
        "rows": [
            {"path": "bare", "p50_ms": 1.0},
            {"path": "keras model.predict", "p50_ms": 42.678, "oom_2": True},
        ]
    }
    gate = {
        "figures": {
            "worker_uss_mb": [35.6],
            "worst_case": {"requests": {"float32, largest batch": {"body_bytes": 4043520}}},
        }
    }
    workspace = docs_workspace(
        tmp_path, page, benchmark=benchmark, gate=gate, demo_model={"parameters": 244682}
    )
    docs(workspace)
    json_target = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["bench"]["cpu_targets"]
    values = [
        line.split("-->")[1].split("<!--")[0]
        for line in (tmp_path / "docs" / "page.md").read_text().splitlines()
    ]
    assert values == ["42.678", "4.04", "244,682", "35.6", "yes", f"{json_target['json']:g}"]


def test_a_figure_naming_no_value_is_a_clear_error(tmp_path):
    page = "<!-- figure: gate.measures.cold_start.value -->2.9<!-- /figure -->\n"
    workspace = docs_workspace(tmp_path, page, gate={"measures": {"cold_start_seconds": {}}})
    completed = docs(workspace, "--check")
    assert completed.returncode == 1
    assert "docs/page.md: gate.measures.cold_start.value: no 'cold_start' there" in completed.stderr


def test_a_figure_from_a_benchmark_not_run_here_is_kept_and_named(tmp_path):
    page = "<!-- figure: benchmark.rows[path=x].p50_ms -->1.0<!-- /figure -->\n"
    workspace = docs_workspace(tmp_path, page)
    completed = docs(workspace, "--check")
    assert completed.returncode == 0
    assert "not checked: figures from reports/benchmark.json (absent here)" in completed.stdout
    assert (tmp_path / "docs" / "page.md").read_text() == page


def test_the_tables_built_from_the_committed_verdicts(tmp_path):
    blocks = ["summary", "metrics", "gate-measures", "plan-fit", "plans", "worst-case"]
    page = "".join(f"<!-- {name}:start -->\n<!-- {name}:end -->\n" for name in blocks)
    workspace = docs_workspace(tmp_path, page)
    shutil.rmtree(tmp_path / "reports")
    shutil.copytree(REPO_ROOT / "reports", tmp_path / "reports")
    docs(workspace)
    text = (tmp_path / "docs" / "page.md").read_text()
    gate = json.loads((REPO_ROOT / "reports" / "gate.json").read_text())
    sha = gate["candidate_sha256"][:12]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    assert f"gate     {verdict:<7}  " in text and (sha in text or not gate["passed"])
    machine = gate["machine"]
    assert f"({machine['cpu_model']}, {machine['cores']} cores, " in text  # whose run it is
    assert f"the gate measured at {machine['measured_at']}." in text
    for plan in gate["plan_fit"]["plans"]:
        assert f"| {plan['name']} | {plan['memory_mb']} MB |" in text
    peak = gate["measures"]["peak_memory_mb"]
    assert f"| `peak_memory_mb` | {peak['value']:g} | {peak['rule']} {peak['threshold']} |" in text
    assert "| `reports/metrics/gate.json` | `peak_mb` |" in text
    assert "| `free` | 512 MB | 0.1 |" in text
    assert docs(workspace, "--check").returncode == 0


def test_the_gate_steadiness_table_goes_to_the_gate_page(tmp_path):
    (tmp_path / "docs").mkdir()
    page = "# The gate\n\n<!-- gate-steadiness:start -->\nold\n<!-- gate-steadiness:end -->\n"
    (tmp_path / "docs" / "gate.md").write_text(page)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "gate_steadiness.md").write_text("| judged figure |\n|---|\n")
    completed = run_stage("pipeline.report.docs", Workspace(tmp_path))
    assert "updated: docs/gate.md" in completed.stdout
    assert "| judged figure |" in (tmp_path / "docs" / "gate.md").read_text()


def test_the_layout_lists_each_package_and_module_by_the_first_sentence_of_its_docstring(
    tmp_path,
):
    package = tmp_path / "pipeline" / "tools"
    package.mkdir(parents=True)
    (tmp_path / "pipeline" / "__init__.py").write_text('"""Everything a user runs."""\n')
    (package / "__init__.py").write_text('"""Small tools, e.g. a clock. Not a framework."""\n')
    (package / "clock.py").write_text(
        '"""The time now: `time.time()` in one\nplace. Monotonic elsewhere.\n\nMore."""\n'
    )
    blocks = ("layout", "modules")
    page = "".join(f"<!-- {name}:start -->\n<!-- {name}:end -->\n" for name in blocks)
    workspace = docs_workspace(tmp_path, page)
    assert docs(workspace).returncode == 0
    text = (tmp_path / "docs" / "page.md").read_text()
    assert "pipeline/             Everything a user runs.\n" in text
    assert "pipeline/tools/       Small tools, e.g. a clock.\n" in text
    assert "| `clock.py` | The time now: `time.time()` in one place. |" in text
    (package / "alarm.py").write_text('"""Rings."""\n')
    stale = docs(workspace, "--check")
    assert stale.returncode == 1 and "docs/page.md: the modules block differs" in stale.stdout
