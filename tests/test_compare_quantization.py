"""`make quantization`'s table: one line per mode, failures named short with the whole message
below, the CPU of one invoke measured on the real interpreter, and a recommended mode."""

import pytest

from pipeline.conversion.compare_quantization import markdown_table, recommend, run_mode

CRASH = (
    "the converter process died with SIGSEGV (exit -11) while quantizing to int8: "
    "Fatal Python error: Segmentation fault\nCurrent thread 0x00007f (most recent call first):\n"
    '  File "tensorflow/lite/python/convert.py", line 320 in convert'
)


def passing(mode: str, bundle_mb: float, cpu_ms: float, max_diff: float) -> dict:
    """A row as run_mode writes it for a mode whose convert and parity passed."""
    return {
        "quantization": mode,
        "convert": {"passed": True},
        "parity": {
            "passed": True,
            "measures": {
                "max_abs_diff": {"value": max_diff},
                "top1_agreement": {"value": 1.0},
            },
            "accuracy": {"keras": 0.86, "tflite": 0.86},
        },
        "bundle_mb": bundle_mb,
        "cpu_ms_per_invoke": cpu_ms,
    }


ROWS = [
    passing("none", 1.03, 1.30, 3e-7),
    passing("float16", 0.53, 1.31, 7.5e-4),
    passing("dynamic", 0.32, 0.78, 6.6e-3),
    {
        "quantization": "int8",
        "convert": {"passed": False, "reason": CRASH},
        "failure": CRASH,
        "failed_stage": "convert",
    },
]


def test_each_mode_is_one_line_and_a_crash_is_named_short_with_its_message_below():
    table = markdown_table(ROWS)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| none",
        "| float16",
        "| dynamic",
        "| int8",
    ]
    int8 = rows[-1]
    assert "| int8 | no: the converter process died with SIGSEGV... [1] |" in int8
    assert "Fatal Python error" not in int8 and int8.endswith("[1] | | | | | | |")
    assert "[1] int8 (convert): the converter process died with SIGSEGV" in table
    assert "| dynamic | yes | 0.32 MB | 0.78 ms | 6.6e-03 |" in table


def test_the_recommendation_is_the_cheapest_passing_mode_and_says_why():
    assert recommend(ROWS)[0] == "dynamic"
    assert "**Recommended: dynamic**: it passes parity and costs 0.78 ms" in markdown_table(ROWS)


def test_a_tie_on_cpu_goes_to_the_smaller_bundle():
    rows = ROWS[:2]  # none 1.30 ms and float16 1.31 ms: within 10%
    choice, why = recommend(rows)
    assert choice == "float16" and "smallest bundle" in why


def test_no_passing_mode_recommends_nothing():
    assert recommend(ROWS[3:])[0] is None
    assert "no mode passed parity" in markdown_table(ROWS[3:])


@pytest.mark.slow
def test_a_mode_is_converted_checked_and_timed_by_the_real_stages(checked_workspace):
    row = run_mode(checked_workspace, "float16", invokes=20, position="1/1")
    assert "failure" not in row, row.get("failure")
    assert row["convert"]["passed"] and row["convert"]["quantization"] == "float16"
    assert row["parity"]["passed"] and row["parity"]["quantization"] == "float16"
    # The real interpreter's CPU per invoke, and the bundle the gate would weigh.
    assert row["cpu_ms_per_invoke"] > 0 and 0 < row["bundle_mb"] < 5
    table = markdown_table([row])
    assert "| float16 | yes | " in table and "| passed |" in table
    assert "**Recommended: float16**" in table
    # The scratch run never touches the workspace's own verdicts.
    assert '"quantization": "none"' in checked_workspace.report_path("convert").read_text()
