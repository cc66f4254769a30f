"""The benchmark's outputs: JSON, a markdown table and a PNG chart (never the docs' text)."""

from benchmarks.cpu_per_request import markdown as cpu_markdown
from pipeline.paths import Workspace
from pipeline.verdicts import write_json


def _cell(value, fmt: str = "{}") -> str:
    return "" if value is None else fmt.format(value)


def markdown_table(result: dict) -> str:
    """One row per serving path; every figure comes from the run's JSON."""
    machine = result["machine"]
    lines = [
        f"Measured {machine['date']} on {machine['cpus']} CPUs / {machine['memory_gb']} GB, "
        f"Python {machine['python']}, {machine['platform']}; each path inside a "
        f"{result['settings']['memory_limit_mb']} MB memory cgroup (kernel peak, not RSS); "
        f"latencies are medians and percentiles of {result['settings']['predictions']} "
        f"predictions of one sample; `make bench` took {result['seconds']} s.",
        "",
        "| path | model | peak MB, 1 process | OOM, 1 | peak MB, 2 processes | OOM, 2 | "
        "cold start s | p50 ms | p95 ms | p99 ms | predictions/s | HTTP p50 ms float32 / JSON |"
        " HTTP 2 workers: peak MB, OOM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if "peak_mb_1" not in row:
            lines.append(
                f"| {row['path']} | does not run: {row.get('error', '')} | | | | | | | | | | | |"
            )
            continue
        size = _cell(row.get("model_bytes") and row["model_bytes"] / 1e6, "{:.2f} MB") or "Keras"
        http1, http2 = row.get("http_1w", {}), row.get("http_2w", {})
        http = (
            f"{http1['http_float32_p50_ms']} / {http1['http_json_p50_ms']}"
            if "http_float32_p50_ms" in http1
            else "does not serve"
        )
        http_two = f"{http2['peak_mb']}, {'yes' if http2['oom_kills'] else 'no'}" if http2 else ""
        lines.append(
            f"| {row['path']} | {size} | {row['peak_mb_1']} | {'yes' if row['oom_1'] else 'no'} "
            f"| {row['peak_mb_2']} | {'yes' if row['oom_2'] else 'no'} | {row['cold_start_s']} "
            f"| {_cell(row.get('p50_ms'))} | {_cell(row.get('p95_ms'))} "
            f"| {_cell(row.get('p99_ms'))} | {_cell(row.get('throughput_per_s'))} | {http} "
            f"| {http_two} |"
        )
    cpu = cpu_markdown(result["cpu_per_request"]) if result.get("cpu_per_request") else []
    return "\n".join(lines + service_versus_bare(result) + cpu) + "\n"


def service_versus_bare(result: dict) -> list[str]:
    """The service's overhead over the bare interpreter, from the same run."""
    rows = {row["path"]: row for row in result["rows"]}
    bare, served = rows.get("bare interpreter none"), rows.get("ai-edge-litert none")
    if not bare or not served or "http_1w" not in served or "p50_ms" not in bare:
        return []
    http = served["http_1w"]
    requests_total = 2 * result["settings"]["http_requests"]
    return [
        "",
        f"Service against the bare interpreter (float32 model, same run): HTTP median "
        f"{http['http_float32_p50_ms']} ms for a float32 body = "
        f"{http['http_float32_p50_ms'] / bare['p50_ms']:.2f} x the bare invoke "
        f"({bare['p50_ms']} ms), {http['http_json_p50_ms']} ms for a JSON body = "
        f"{http['http_json_p50_ms'] / bare['p50_ms']:.2f} x; one worker and its master after "
        f"{requests_total} predictions peak at {http['peak_mb']} MB = "
        f"{http['peak_mb'] / bare['peak_mb_1']:.2f} x the bare script's {bare['peak_mb_1']} MB; "
        f"process start to the first 200 on /api/health/: {http['cold_start_s']} s.",
    ]


def chart(result: dict, png_path) -> None:
    """Peak memory and median latency per path, the memory limit drawn across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in result["rows"] if "peak_mb_1" in row]
    names = [row["path"] for row in rows]
    limit = result["settings"]["memory_limit_mb"]
    figure, (memory_axis, latency_axis) = plt.subplots(1, 2, figsize=(13, 5))
    positions = range(len(rows))
    memory_axis.barh(
        [p - 0.2 for p in positions],
        [r["peak_mb_1"] for r in rows],
        height=0.4,
        label="1 process",
        color="#4c78a8",
    )
    memory_axis.barh(
        [p + 0.2 for p in positions],
        [r["peak_mb_2"] for r in rows],
        height=0.4,
        label="2 processes",
        color="#9ecae9",
    )
    memory_axis.axvline(limit, color="#d62728", linestyle="--", label=f"{limit} MB limit")
    memory_axis.set_yticks(list(positions), names)
    memory_axis.invert_yaxis()
    memory_axis.set_xlabel("kernel peak memory in the cgroup (MB)")
    memory_axis.legend(loc="lower right")
    latency_axis.barh(list(positions), [r.get("p50_ms") or 0 for r in rows], color="#f58518")
    latency_axis.set_xscale("log")
    latency_axis.set_yticks(list(positions), [""] * len(rows))
    latency_axis.invert_yaxis()
    latency_axis.set_xlabel("median latency of one prediction, in process (ms, log scale)")
    figure.suptitle(
        f"Serving paths side by side ({result['machine']['date']}, "
        f"{result['machine']['cpus']} CPUs)"
    )
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)


def write_outputs(workspace: Workspace, result: dict) -> str:
    """reports/benchmark.{json,md,png} and docs/benchmark.png; the docs' text is left alone."""
    reports = workspace.reports_dir
    write_json(reports / "benchmark.json", result)
    table = markdown_table(result)
    (reports / "benchmark.md").write_text(table)
    chart(result, reports / "benchmark.png")
    # docs/benchmarks.md shows the chart from docs/, a plain git file (.gitattributes).
    docs_dir = workspace.root / "docs"
    docs_dir.mkdir(exist_ok=True)
    chart(result, docs_dir / "benchmark.png")
    print(table)
    return table
