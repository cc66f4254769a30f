"""`make quantization`: each mode runs the real convert and parity stages in a scratch workspace."""

import pytest

from pipeline.conversion.compare_quantization import markdown_table, run_mode


@pytest.mark.slow
def test_a_mode_is_converted_and_checked_by_the_real_stages(checked_workspace):
    row = run_mode(checked_workspace, "float16")
    assert "failure" not in row, row.get("failure")
    assert row["convert"]["passed"] and row["convert"]["quantization"] == "float16"
    assert row["parity"]["passed"] and row["parity"]["quantization"] == "float16"
    table = markdown_table([row])
    assert "| float16 | yes | " in table and "| passed |" in table
    # The scratch run never touches the workspace's own verdicts.
    assert checked_workspace.report_path("convert").is_file()
    assert '"quantization": "none"' in checked_workspace.report_path("convert").read_text()
