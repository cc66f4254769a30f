"""The peer comparison's outputs: reports/bench/peers.json, a markdown table and a PNG chart.

Every figure comes from the run's JSON; `make docs` copies the table into the README and the
chart into docs/ (pipeline/report/docs.py).
"""

from pipeline.paths import Workspace
from pipeline.verdicts import write_json

PLAN_MEMORY_MB = 512  # Render free and starter; drawn across the memory chart


def _ratio(load: dict) -> str:
    if not load.get("cpu_ms"):
        return "no answer"
    return f"{load['cpu_ms']} ({load['ratio']}x)"


def _share(value) -> str:
    return "" if value is None else f"{value:.0%}"


def markdown_table(result: dict) -> str:
    """One row per server and CPU setting, and which server spends least on each measure."""
    machine, settings = result["machine"], result["settings"]
    clients = settings["peer_clients"]
    lines = [
        f"Measured {machine['date']} in one run of `make bench-peers` ({result['seconds']} s) on "
        f"{machine['cpus']} CPUs, Python {machine['python']}; the machine was shared: some task "
        f"waited for a CPU {_share(machine['cpu_stalled_share'])} of the run (PSI), load "
        f"average {machine['load_average'][0]} at the end. One float32 sample per request in "
        "each server's own format (ours: raw float32 bytes; MLServer: Open Inference Protocol "
        "v2 JSON; BentoML: its JSON). CPU is what the kernel charged to the service's cgroup "
        "(every process of it) per answered request, and in brackets its ratio to a bare batch-1 "
        "`invoke()` of the same model measured just before in the same CPU share; peak memory "
        "is the kernel's peak for the service's cgroup (page cache included).",
        "",
        "| server | CPU | request bytes | cold start s | peak MB | bare invoke CPU ms "
        "| 1 client: CPU ms "
        f"(x bare) | 1 client: p50 ms | {clients} clients: CPU ms (x bare) | {clients} clients: "
        "requests/s | answer as ours | PSI stalled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if "error" in row:
            lines.append(
                f"| {row['server']} | {row['cpu']} | not measured: {row['error']} |" + " |" * 9
            )
            continue
        lone, many = row["lone"], row["concurrent"]
        lines.append(
            f"| {row['server']} | {row['cpu']} | {row['request_bytes']} | {row['cold_start_s']} "
            f"| {row['peak_mb']} "
            f"| {row['bare_invoke_cpu_ms']} | {_ratio(lone)} | {lone['p50_ms']} "
            f"| {_ratio(many)} | {many['requests_per_s']} "
            f"| {'yes' if row['answer_matches'] else 'NO'} | {_share(row['cpu_stalled_share'])} |"
        )
    measured = [row for row in result["rows"] if "error" not in row]
    lines += ["", *leaders(measured, clients)]
    return "\n".join(lines) + "\n"


def leaders(rows: list[dict], clients: int) -> list[str]:
    """For each CPU setting, the server with the least of each measure."""
    measures = {  # label -> (the figure, its unit)
        "CPU per request with 1 client": (lambda row: row["lone"]["ratio"], "x bare"),
        f"CPU per request with {clients} clients": (
            lambda row: row["concurrent"]["ratio"],
            "x bare",
        ),
        "peak memory": (lambda row: row["peak_mb"], "MB"),
        "cold start": (lambda row: row["cold_start_s"], "s"),
    }
    lines = []
    for setting in dict.fromkeys(row["cpu"] for row in rows):
        group = [row for row in rows if row["cpu"] == setting]
        parts = []
        for label, (value, unit) in measures.items():
            ranked = sorted((row for row in group if value(row) is not None), key=value)
            if len(ranked) > 1:
                runner_up = ranked[1]
                parts.append(
                    f"{label}, {ranked[0]['server']} ({value(ranked[0])} {unit}; next: "
                    f"{runner_up['server']}, {value(runner_up)} {unit})"
                )
        if parts:
            lines.append(f"- Least at {setting}: " + "; ".join(parts) + ".")
    return lines


def chart(result: dict, png_path) -> None:
    """CPU per request over bare invoke, peak memory and cold start, per server and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in result["rows"] if "error" not in row]
    servers = list(dict.fromkeys(row["server"] for row in rows))
    settings = list(dict.fromkeys(row["cpu"] for row in rows))
    by_key = {(row["server"], row["cpu"]): row for row in rows}
    clients = result["settings"]["peer_clients"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    colours = ["#4c78a8", "#9ecae9", "#f58518", "#ffbf79"]
    series = [(f"1 client, {s}", s, lambda row: row["lone"]["ratio"]) for s in settings] + [
        (f"{clients} clients, {s}", s, lambda row: row["concurrent"]["ratio"]) for s in settings
    ]
    width = 0.8 / len(series)
    for index, (label, setting, value) in enumerate(series):
        heights = [
            value(by_key[(s, setting)]) or 0 if (s, setting) in by_key else 0 for s in servers
        ]
        positions = [p + (index - (len(series) - 1) / 2) * width for p in range(len(servers))]
        colour = colours[index % len(colours)]
        bars = axes[0].bar(positions, heights, width, label=label, color=colour)
        axes[0].bar_label(bars, fmt="%.2g", fontsize=7)
    axes[0].axhline(1.0, color="#555555", linewidth=0.8)
    axes[0].set_ylabel("service CPU per request / bare invoke CPU")
    axes[0].legend(fontsize=8)
    width = 0.8 / len(settings)
    for panel, key, ylabel in (
        (axes[1], "peak_mb", "kernel peak memory of the service (MB)"),
        (axes[2], "cold_start_s", "start to first healthy answer (s)"),
    ):
        for index, setting in enumerate(settings):
            heights = [by_key[(s, setting)][key] if (s, setting) in by_key else 0 for s in servers]
            positions = [p + (index - (len(settings) - 1) / 2) * width for p in range(len(servers))]
            bars = panel.bar(positions, heights, width, label=setting, color=colours[index * 2])
            panel.bar_label(bars, fmt="%.3g", fontsize=7)
        panel.set_ylabel(ylabel)
        panel.legend(fontsize=8)
    axes[1].axhline(PLAN_MEMORY_MB, color="#d62728", linestyle="--")
    axes[1].text(0, PLAN_MEMORY_MB, f" {PLAN_MEMORY_MB} MB plan", va="bottom", color="#d62728")
    for axis in axes:
        axis.set_xticks(range(len(servers)), servers, fontsize=9)
    figure.suptitle(f"Serving the same candidate: ours and the peers ({result['machine']['date']})")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def write_outputs(workspace: Workspace, result: dict) -> str:
    """reports/bench/peers.{json,md,png}; the README and docs/ are `make docs`'s to change."""
    out_dir = workspace.reports_dir / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "peers.json", result)
    table = markdown_table(result)
    (out_dir / "peers.md").write_text(table, encoding="utf-8")
    chart(result, out_dir / "peers.png")
    print(table)
    return table
