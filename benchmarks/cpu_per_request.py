"""Worker CPU per request against a bare invoke(), both body formats, unthrottled and on a quota.

On a quota host, CPU per request is what the plan pays for; it is also far steadier than wall
time on a shared machine. For each CPU setting (unthrottled, then the plan's share): a bare
interpreter loop in its own process gives the CPU of one invoke(); the service, started with
render.yaml's command in the same CPU group, answers one keep-alive client posting one sample
per request, and the worker's CPU (utime + stime from /proc) is divided by the requests.

Run by benchmarks/run.py (`make bench`); `python -m benchmarks.cpu_per_request bare BUNDLE N`
is the bare loop itself.
"""

import http.client
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import orjson

from benchmarks.traffic import cpu_group, start_server, tree_cpu_seconds
from pipeline.cgroups import ResourceGroup
from pipeline.conversion.invoke_cost import cpu_ms_per_invoke
from pipeline.gate.render_service import RenderWebService
from pipeline.params.sections import BenchParams
from pipeline.paths import REPO_ROOT

FORMATS = {"float32": "application/octet-stream", "json": "application/json"}


def bare_loop(bundle: str, count: int) -> None:
    """Print the CPU milliseconds of one set_tensor/invoke/get_tensor, averaged over `count`."""
    print(cpu_ms_per_invoke(Path(bundle) / "model.tflite", count))


def bare_cpu_ms(bundle: Path, count: int, env: dict, group: ResourceGroup) -> float:
    argv = [sys.executable, "-m", "benchmarks.cpu_per_request", "bare", str(bundle), str(count)]
    process = group.popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    output, error = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"the bare invoke() loop failed: {error.strip()[-2000:]}")
    return float(output.strip().splitlines()[-1])


def service_cpu_ms(bundle: Path, bodies: dict, count: int, env: dict, group: ResourceGroup) -> dict:
    """Worker CPU ms per request for each body format, one keep-alive client."""
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    env = {**env, **render.env, "MODEL_DIR": str(bundle)}
    process, port, _ = start_server(group, render.start_command, env)
    worker = int(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()[0])
    figures = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for body_format, body in bodies.items():
        headers = {"Content-Type": FORMATS[body_format]}
        for index in range(count + 20):
            if index == 20:  # the first 20 warm caches and the connection
                cpu_before, wall_before = tree_cpu_seconds(worker), time.perf_counter()
            connection.request("POST", "/api/predict/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from the service under test")
        cpu = tree_cpu_seconds(worker) - cpu_before
        wall = time.perf_counter() - wall_before
        figures[body_format] = {
            "cpu_ms": round(cpu * 1000 / count, 3),
            "requests_per_s": round(count / wall, 1),
        }
    connection.close()
    return figures


def measure(bundle: Path, samples: Path, settings: BenchParams, env: dict) -> dict:
    """CPU per request and the ratio to a bare invoke, unthrottled and at the plan's share."""
    with np.load(samples) as archive:
        sample = archive["X"][0].astype("<f4")
    bodies = {
        "float32": sample.tobytes(),
        "json": orjson.dumps({"instances": sample.tolist()}),
    }
    result = {"targets": asdict(settings.cpu_targets), "settings": {}}
    for label, share in (
        ("full speed", None),
        (f"{settings.cpu_share} CPU", settings.cpu_share),
    ):
        count = settings.cpu_requests if share is None else settings.cpu_requests_quota
        with cpu_group(share, "bench-cpu") as group:  # it stops the service as it closes
            bare = bare_cpu_ms(bundle, max(count, 200), env, group)
            served = service_cpu_ms(bundle, bodies, count, env, group)
        result["settings"][label] = {
            "bare_invoke_cpu_ms": round(bare, 3),
            **{
                body_format: {**figures, "ratio": round(figures["cpu_ms"] / bare, 2)}
                for body_format, figures in served.items()
            },
        }
    return result


def markdown(result: dict) -> list[str]:
    """The CPU table, with each ratio against its target."""
    targets = result["targets"]
    lines = [
        "",
        "Worker CPU per request (one sample, one keep-alive client; utime + stime of the "
        "worker from /proc) against a bare `invoke()` of the same model in the same CPU group:",
        "",
        "| CPU | bare invoke CPU ms | float32 CPU ms | float32 ratio "
        f"(target <= {targets['float32']}) | JSON CPU ms | JSON ratio (target <= "
        f"{targets['json']}) | float32 / JSON requests/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in result["settings"].items():
        verdicts = {
            fmt: "met" if row[fmt]["ratio"] <= targets[fmt] else "not met" for fmt in FORMATS
        }
        lines.append(
            f"| {label} | {row['bare_invoke_cpu_ms']} | {row['float32']['cpu_ms']} "
            f"| {row['float32']['ratio']}x, {verdicts['float32']} | {row['json']['cpu_ms']} "
            f"| {row['json']['ratio']}x, {verdicts['json']} "
            f"| {row['float32']['requests_per_s']} / {row['json']['requests_per_s']} |"
        )
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        bare_loop(sys.argv[2], int(sys.argv[3]))
