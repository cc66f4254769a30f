"""Worker CPU per request with 1, 4 and 16 concurrent clients, against a bare batch-1 invoke.

`python -m benchmarks.batching_figures BUNDLE SAMPLES.npz [BASELINE_TREE]` starts the
service with render.yaml's command (unthrottled: FACTS.md, CPU inside a throttled group is
not steady here) from this tree and, if given, from another checkout of the project (the
service before a change), side by side in interleaved rounds; each round posts single-sample float32
bodies from keep-alive clients and divides the worker's CPU (utime + stime from /proc) by the
requests answered. Per tree and client count it keeps the median and the least CPU of the
rounds and the median lone-client latency; the machine's CPU pressure (/proc/pressure/cpu)
is recorded before and after. Writes reports/batching_figures.json and the table `make docs`
copies into docs/benchmarks.md, reports/batching_figures.md (`make bench-batching
BASELINE=DIR`).
"""

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.cpu_per_request import bare_cpu_ms
from benchmarks.traffic import cpu_group, start_server, tree_cpu_seconds
from pipeline.gate.render_service import RenderWebService
from pipeline.paths import REPO_ROOT

CLIENT_COUNTS = (1, 4, 16)
REQUESTS_PER_CLIENT = {1: 100, 4: 25, 16: 8}  # about 100 requests a round
ROUNDS = 10
FLOAT32 = {"Content-Type": "application/octet-stream"}


def cpu_pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "unavailable"


def drive(port: int, body: bytes, clients: int, per_client: int) -> list[float]:
    """`clients` keep-alive clients posting `body` `per_client` times: latencies (s)."""
    latencies: list[float] = []
    lock, failures = threading.Lock(), []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(per_client):
            started = time.perf_counter()
            connection.request("POST", "/api/predict/", body=body, headers=FLOAT32)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
            with lock:
                latencies.append(time.perf_counter() - started)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the service answered {failures[:5]} under test")
    return latencies


def start_tree(tree: Path, bundle: Path, group) -> tuple[int, int]:
    """render.yaml's service from `tree`: its port and its worker's pid."""
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    env = {**render.env, "MODEL_DIR": str(bundle), "PYTHONPATH": str(tree)}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    process, port, _ = start_server(group, render.start_command, env, cwd=tree)
    worker = int(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()[0])
    return port, worker


def batching_figures(bundle: Path, samples: Path, baseline: Path | None) -> dict:
    """Both services run side by side; each round measures one tree then the other, so the
    machine's load at a moment weighs on both alike."""
    with np.load(samples) as archive:
        body = archive["X"][0].astype("<f4").tobytes()
    trees = {"this tree": REPO_ROOT, **({"baseline": baseline} if baseline else {})}
    measured: dict = {name: {clients: [] for clients in CLIENT_COUNTS} for name in trees}
    p50s: dict = {name: [] for name in trees}
    pressure_before = cpu_pressure()
    with cpu_group(None, "bench-batching") as group:
        bare = min(bare_cpu_ms(bundle, 500, {}, group) for _ in range(3))
        services = {name: start_tree(tree, bundle, group) for name, tree in trees.items()}
        for port, _ in services.values():
            drive(port, body, 4, 20)  # warm caches, connections and the batcher
        for clients in CLIENT_COUNTS:
            per_client = REQUESTS_PER_CLIENT[clients]
            for _ in range(ROUNDS):
                for name, (port, worker) in services.items():
                    before = tree_cpu_seconds(worker)
                    latencies = drive(port, body, clients, per_client)
                    cpu = tree_cpu_seconds(worker) - before
                    measured[name][clients].append(cpu * 1000 / (clients * per_client))
                    if clients == 1:
                        p50s[name].append(statistics.median(latencies) * 1000)
    result = {
        "bare_invoke_cpu_ms": round(bare, 3),
        "cpu_pressure_before": pressure_before,
        "cpu_pressure_after": cpu_pressure(),
        "rounds": ROUNDS,
        "trees": {},
    }
    for name in trees:
        figures = {}
        for clients in CLIENT_COUNTS:
            rounds = measured[name][clients]
            figures[f"{clients}_clients"] = {
                "cpu_ms_median": round(statistics.median(rounds), 3),
                "cpu_ms_least": round(min(rounds), 3),
                "median_vs_bare_invoke": round(statistics.median(rounds) / bare, 2),
                "least_vs_bare_invoke": round(min(rounds) / bare, 2),
            }
        figures["1_clients"]["p50_ms_median"] = round(statistics.median(p50s[name]), 2)
        result["trees"][name] = figures
    return result


def tree_commit(tree: Path) -> str:
    """The tree's commit, short, or 'unknown' outside a git checkout."""
    completed = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"


def in_markdown(figures: dict) -> str:
    """The table docs/benchmarks.md shows: CPU per request and its ratio to a bare invoke."""
    names = list(figures["trees"])
    header = ["clients", *(f"{name} ({figures['commits'][name]})" for name in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for clients in CLIENT_COUNTS:
        cells = []
        for name in names:
            row = figures["trees"][name][f"{clients}_clients"]
            cells.append(f"{row['cpu_ms_median']} ms ({row['median_vs_bare_invoke']}x)")
        lines.append(f"| {clients} | " + " | ".join(cells) + " |")
    p50s = [f"{figures['trees'][name]['1_clients']['p50_ms_median']} ms" for name in names]
    lines.append("| 1, p50 latency | " + " | ".join(p50s) + " |")
    return (
        "\n".join(lines)
        + f"\n\nWorker CPU per single-sample float32 request, median of {figures['rounds']} "
        f"interleaved rounds, and its ratio to a bare batch-1 `invoke()` of the same model "
        f"({figures['bare_invoke_cpu_ms']} ms). Measured {figures['measured_at']} "
        f"(`make bench-batching`); CPU pressure before: {figures['cpu_pressure_before']}.\n"
    )


if __name__ == "__main__":
    baseline_tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else None
    figures = batching_figures(Path(sys.argv[1]).resolve(), Path(sys.argv[2]), baseline_tree)
    figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    trees = {"this tree": REPO_ROOT, "baseline": baseline_tree}
    figures["commits"] = {name: tree_commit(trees[name]) for name in figures["trees"]}
    reports = REPO_ROOT / "reports"
    (reports / "batching_figures.json").write_text(
        json.dumps(figures, indent=2) + "\n", encoding="utf-8"
    )
    (reports / "batching_figures.md").write_text(in_markdown(figures), encoding="utf-8")
    print(in_markdown(figures))
