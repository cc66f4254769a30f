"""Candidate WSGI servers for the service, side by side in one run (python -m benchmarks.servers).

Each candidate serves the same app and bundle. Unthrottled: cold start, worker CPU per
request (float32 and JSON, one keep-alive client), resident memory after the load. Under a
0.1 CPU quota (Render free): cold start, /api/health/ while 100 idle connections and 8
slow-body clients are open, and /api/health/ while 32 clients saturate /api/predict/.
Writes reports/servers.json and reports/servers.md.
"""

import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from benchmarks.traffic import (
    SlowBodyClients,
    cpu_group,
    open_idle_connections,
    probe_health,
    saturate,
    start_server,
    tree_cpu_seconds,
    tree_rss_mb,
)
from pipeline.gate.render_service import RenderWebService
from pipeline.paths import REPO_ROOT

CANDIDATES = {
    "gunicorn gthread, 4 threads": (
        "gunicorn service.app:app --bind 127.0.0.1:{port} --workers 1 --worker-class gthread"
        " --threads 4 --timeout 30 --keep-alive 5 --no-control-socket"
    ),
    # The choice: render.yaml's own command (gunicorn, gevent worker answering its own
    # refusals in JSON), read from the file so this row is always what ships.
    "gunicorn gevent (render.yaml)": RenderWebService.read(REPO_ROOT / "render.yaml").start_command,
    "waitress, 4 threads": (
        "waitress-serve --listen=127.0.0.1:{port} --threads=4 --connection-limit=1000"
        " --channel-timeout=30 --asyncore-use-poll service.app:app"
    ),
    "granian wsgi, 4 blocking threads": (
        "granian --interface wsgi --host 127.0.0.1 --port {port} --workers 1"
        " --blocking-threads 4 --no-access-log service.app:app"
    ),
}


def cpu_per_request_ms(pid: int, port: int, body: bytes, content_type: str, count: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    before = tree_cpu_seconds(pid)
    for _ in range(count):
        connection.request(
            "POST", "/api/predict/", body=body, headers={"Content-Type": content_type}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    connection.close()
    return round((tree_cpu_seconds(pid) - before) * 1000 / count, 3)


def seconds_summary(probes: list[tuple[int, float]]) -> dict:
    times = sorted(seconds for _, seconds in probes)
    return {
        "ok": sum(status == 200 for status, _ in probes),
        "probes": len(probes),
        "max_s": round(times[-1], 3),
        "p99_s": round(float(np.percentile(times, 99)), 3),
    }


def measure(name: str, command: str, env: dict, sample: np.ndarray) -> dict:
    float32_body = sample.astype("<f4").tobytes()
    json_body = orjson.dumps({"instances": sample.tolist()})
    row: dict = {"server": name}
    with cpu_group(None, "servers") as group:  # the group stops the server as it closes
        process, port, row["cold_start_s"] = start_server(group, command, env)
        for _ in range(20):  # warm up
            cpu_per_request_ms(process.pid, port, float32_body, "application/octet-stream", 1)
        row["cpu_ms_float32"] = cpu_per_request_ms(
            process.pid, port, float32_body, "application/octet-stream", 400
        )
        row["cpu_ms_json"] = cpu_per_request_ms(
            process.pid, port, json_body, "application/json", 200
        )
        row["rss_mb"] = tree_rss_mb(process.pid)
    with cpu_group(0.1, "servers") as group:
        process, port, row["cold_start_quota_s"] = start_server(group, command, env)
        idle = open_idle_connections(port, 100)
        slow = SlowBodyClients(port, 8, len(float32_body), seconds=20)
        time.sleep(1)
        row["health_idle_slow"] = seconds_summary(probe_health(port, 8, 0.5))
        slow.close()
        for connection in idle:
            connection.close()
        results: dict = {}

        def load() -> None:
            results["statuses"], results["latencies"] = saturate(
                port, float32_body, "application/octet-stream", 32, 8
            )

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(1)
        row["health_saturated"] = seconds_summary(probe_health(port, 12, 0.4))
        loader.join()
        row["saturated_statuses"] = dict(results["statuses"])
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| server | cold start s (0.1 CPU) | RSS MB "
        "| CPU ms/request, all processes, float32 / JSON "
        "| health with 100 idle + 8 slow clients, 0.1 CPU: ok, max s "
        "| health under 32 saturating clients, 0.1 CPU: ok, p99 s | predict statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        idle, sat = row["health_idle_slow"], row["health_saturated"]
        lines.append(
            f"| {row['server']} | {row['cold_start_s']:.2f} ({row['cold_start_quota_s']:.2f}) "
            f"| {row['rss_mb']} | {row['cpu_ms_float32']} / {row['cpu_ms_json']} "
            f"| {idle['ok']}/{idle['probes']}, {idle['max_s']} "
            f"| {sat['ok']}/{sat['probes']}, {sat['p99_s']} | {row['saturated_statuses']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    bundle = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "build" / "candidate"
    names = sys.argv[2:] or list(CANDIDATES)
    env = {
        **os.environ,
        **RenderWebService.read(REPO_ROOT / "render.yaml").env,  # CPU_SHARE, MAX_BATCH, ...
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MODEL_DIR": str(bundle.resolve()),
        "PYTHONPATH": str(REPO_ROOT),
    }
    with np.load(REPO_ROOT / "data" / "demo" / "heldout.npz") as heldout:
        sample = heldout["X"][0].astype(np.float32)
    rows = [measure(name, CANDIDATES[name], env, sample) for name in names]
    reports = REPO_ROOT / "reports"
    (reports / "servers.json").write_text(json.dumps(rows, indent=2))
    (reports / "servers.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
