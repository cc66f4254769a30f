"""`make docs`: generated tables reach the README only through this one explicit step."""

from conftest import run_stage

from pipeline.paths import Workspace

README = "# Project\n\n<!-- quantization:start -->\nold table\n<!-- quantization:end -->\n\nEnd.\n"


def test_the_generated_table_is_copied_between_the_markers_once(tmp_path):
    workspace = Workspace(tmp_path)
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "quantization.md").write_text("| mode |\n|---|\n| none |\n")
    first = run_stage("pipeline.report.docs", workspace)
    assert "updated: README.md (quantization table)" in first.stdout
    assert "skipped the benchmark table: no reports/benchmark.md" in first.stdout
    readme = (tmp_path / "README.md").read_text()
    assert "| none |" in readme and "old table" not in readme and readme.endswith("End.\n")
    second = run_stage("pipeline.report.docs", workspace)
    assert "the docs are up to date" in second.stdout
    assert (tmp_path / "README.md").read_text() == readme


def test_missing_markers_are_a_clear_error(tmp_path):
    (tmp_path / "README.md").write_text("# Project\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "quantization.md").write_text("| mode |\n")
    completed = run_stage("pipeline.report.docs", Workspace(tmp_path), check=False)
    assert completed.returncode == 1
    assert "README.md has no <!-- quantization:start -->" in completed.stderr


def test_the_gate_steadiness_table_goes_to_the_gate_page(tmp_path):
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "docs").mkdir()
    page = "# The gate\n\n<!-- gate_steadiness:start -->\nold\n<!-- gate_steadiness:end -->\n"
    (tmp_path / "docs" / "gate.md").write_text(page)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "gate_steadiness.md").write_text("| judged figure |\n|---|\n")
    completed = run_stage("pipeline.report.docs", Workspace(tmp_path))
    assert "docs/gate.md (gate_steadiness table)" in completed.stdout
    assert "| judged figure |" in (tmp_path / "docs" / "gate.md").read_text()
