"""How `make bench` measures one serving path: in its own process under a 512 MB memory group
(peak, OOM kills, cold start, latency), and over loopback HTTP as render.yaml serves it."""

import http.client
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import orjson

from benchmarks.traffic import start_server
from pipeline.cgroups import evict_from_page_cache, memory_limit
from pipeline.gate.render_service import RenderWebService
from pipeline.paths import REPO_ROOT


def in_process(
    python: str,
    path: str,
    model: str,
    samples: Path,
    count: int,
    limit_mb: int,
    processes: int,
    env: dict,
    libraries: list[Path],
) -> dict:
    """Run `processes` copies of one serving path together inside one memory group."""
    argv = [
        python,
        "-m",
        "benchmarks.serving_path",
        "--path",
        path,
        "--model",
        model,
        "--samples",
        str(samples),
        "--count",
        str(count),
    ]
    evict_from_page_cache(Path(model), *libraries)
    with memory_limit(limit_mb, name_prefix="bench") as group:
        children = [
            group.popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        outputs = [child.communicate(timeout=600) for child in children]
        figures = {
            "peak_mb": round(group.peak_mb(), 1),
            "oom_kills": group.oom_kills(),
            "enforced": group.enforced,
            "returncodes": [c.returncode for c in children],
        }
    first = outputs[0][0].strip().splitlines()
    if children[0].returncode == 0 and first:
        figures.update(json.loads(first[-1]))
    else:
        figures["error"] = (outputs[0][1].strip().splitlines() or ["no output"])[-1][:300]
    return figures


def timed_posts(port: int, bodies: list[bytes], content_type: str, count: int) -> list[float]:
    """Milliseconds per POST on one keep-alive connection, bodies encoded beforehand so the
    client's own JSON encoding is not counted as the service's latency."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        connection.request(
            "POST",
            "/api/predict/",
            body=bodies[index % len(bodies)],
            headers={"Content-Type": content_type},
        )
        response = connection.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from the service under test")
    connection.close()
    return latencies


def over_http(
    bundle: Path,
    samples: Path,
    workers: int,
    requests_total: int,
    limit_mb: int,
    env: dict,
    libraries: list[Path],
) -> dict:
    """Serve with render.yaml's command and `workers` workers; HTTP latency for both bodies."""
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    # As the gate does: render.yaml's envVars, then this measurement's port, bundle, workers.
    env = {**env, **render.env, "MODEL_DIR": str(bundle)}
    env["WEB_CONCURRENCY"] = str(workers)
    with np.load(samples) as archive:
        raw = archive["X"].astype("<f4")
    bodies = {
        "float32": ("application/octet-stream", [sample.tobytes() for sample in raw]),
        "json": (
            "application/json",
            [orjson.dumps({"instances": sample.tolist()}) for sample in raw],
        ),
    }
    figures: dict = {}
    evict_from_page_cache(bundle, *libraries)
    with memory_limit(limit_mb, name_prefix="bench") as group:
        _, port, cold_start_seconds = start_server(group, render.start_command, env)
        figures["cold_start_s"] = round(cold_start_seconds, 3)
        for body_format, (content_type, encoded) in bodies.items():
            timed_posts(port, encoded, content_type, 20)  # warm the connection and caches
            began = time.perf_counter()
            latencies = timed_posts(port, encoded, content_type, requests_total)
            figures[f"http_{body_format}_p50_ms"] = round(float(np.median(latencies)), 3)
            figures[f"http_{body_format}_rps"] = round(
                requests_total / (time.perf_counter() - began), 1
            )
        figures.update(peak_mb=round(group.peak_mb(), 1), oom_kills=group.oom_kills())
    return figures


def percentiles(figures: dict) -> dict:
    latencies = figures.get("latencies_ms")
    if not latencies:
        return {}
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p95_ms": round(float(np.percentile(latencies, 95)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "throughput_per_s": round(1000 / float(np.mean(latencies)), 1),
    }
