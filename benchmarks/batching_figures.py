"""Worker CPU per request with 1, 4 and 16 concurrent clients, with batching and without.

`python -m benchmarks.batching_figures BUNDLE SAMPLES.npz` starts render.yaml's service twice
(unthrottled: FACTS.md, CPU inside a throttled group is not steady here), on the bundle as
convert writes it (a batch-1 model and a batch-N one, so samples of concurrent requests share
an invoke) and on the same bundle without its batch-N model (every sample its own invoke), and
measures both side by side in interleaved rounds; each round posts single-sample float32 bodies
from keep-alive clients and divides the worker's CPU (utime + stime from /proc) by the requests
answered. Per service and client count it keeps the median and the least CPU of the rounds and
the median lone-client latency; the machine's CPU pressure (/proc/pressure/cpu) is recorded
before and after. Writes reports/batching_figures.json and the table `make docs` copies into
docs/benchmarks.md, reports/batching_figures.md (`make bench-batching`).
"""

import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.cpu_per_request import bare_cpu_ms
from benchmarks.traffic import cpu_group, start_server, tree_cpu_seconds
from pipeline.gate.machine import this_machine
from pipeline.gate.render_service import RenderWebService
from pipeline.paths import REPO_ROOT
from service.bundle import MANIFEST_NAME

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


def start_service(bundle: Path, group) -> tuple[int, int]:
    """render.yaml's service on `bundle`: its port and its worker's pid."""
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    env = {**render.env, "MODEL_DIR": str(bundle), "PYTHONPATH": str(REPO_ROOT)}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    process, port, _ = start_server(group, render.start_command, env)
    worker = int(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()[0])
    return port, worker


def without_batching(bundle: Path, folder: Path) -> Path:
    """A copy of the bundle with its batch-1 model alone: the service then runs each sample
    by itself, as it does for any bundle without a `batched` model."""
    copy = folder / "batch-1-only"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / MANIFEST_NAME).read_text(encoding="utf-8"))
    batched = manifest.pop("batched", None)
    if batched:
        manifest.get("files", {}).pop(batched["file"], None)
        (copy / batched["file"]).unlink()
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return copy


def service_names(bundle: Path) -> tuple[str, str]:
    """The two services' names, the batched model's size in the first."""
    batched = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8")).get("batched")
    if not batched:
        raise SystemExit(f"{bundle} has no batched model: run `dvc repro convert` first")
    return f"batch 1 and {batched['batch_size']}", "batch 1 only"


def batching_figures(bundle: Path, samples: Path) -> dict:
    """Both services run side by side; each round measures one then the other, so the
    machine's load at a moment weighs on both alike."""
    with np.load(samples) as archive:
        body = archive["X"][0].astype("<f4").tobytes()
    batched_name, single_name = service_names(bundle)
    pressure_before = cpu_pressure()
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as folder:
        bundles = {batched_name: bundle, single_name: without_batching(bundle, Path(folder))}
        measured: dict = {name: {clients: [] for clients in CLIENT_COUNTS} for name in bundles}
        p50s: dict = {name: [] for name in bundles}
        with cpu_group(None, "bench-batching") as group:
            bare = min(bare_cpu_ms(bundle, 500, {}, group) for _ in range(3))
            services = {name: start_service(path, group) for name, path in bundles.items()}
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
        "services": {},
    }
    for name in measured:
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
        result["services"][name] = figures
    return result


def in_markdown(figures: dict) -> str:
    """The table docs/benchmarks.md shows: CPU per request and its ratio to a bare invoke."""
    names = list(figures["services"])
    lines = ["| clients | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for clients in CLIENT_COUNTS:
        cells = []
        for name in names:
            row = figures["services"][name][f"{clients}_clients"]
            cells.append(f"{row['cpu_ms_median']} ms ({row['median_vs_bare_invoke']}x)")
        lines.append(f"| {clients} | " + " | ".join(cells) + " |")
    p50s = [f"{figures['services'][name]['1_clients']['p50_ms_median']} ms" for name in names]
    lines.append("| 1, p50 latency | " + " | ".join(p50s) + " |")
    return (
        "\n".join(lines)
        + f"\n\nWorker CPU per single-sample float32 request, median of {figures['rounds']} "
        f"interleaved rounds, and its ratio to a bare batch-1 `invoke()` of the same model "
        f"({figures['bare_invoke_cpu_ms']} ms). Measured {figures['measured_at']} on "
        f"{figures['machine']} (`make bench-batching`); CPU pressure before: "
        f"{figures['cpu_pressure_before']}.\n"
    )


if __name__ == "__main__":
    figures = batching_figures(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
    figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = this_machine(cgroup_backend="")
    figures["machine"] = f"{machine['cpu_model']}, {machine['cores']} CPUs"
    reports = REPO_ROOT / "reports"
    (reports / "batching_figures.json").write_text(
        json.dumps(figures, indent=2) + "\n", encoding="utf-8"
    )
    (reports / "batching_figures.md").write_text(in_markdown(figures), encoding="utf-8")
    print(in_markdown(figures))
