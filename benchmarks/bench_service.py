"""The service's own figures, measured, not judged: memory, latency and cold start.

    python -m benchmarks.bench_service [--model-dir build/candidate] [--predictions 1000]

Starts render.yaml's startCommand on a loopback port and compares it with a bare
interpreter that loads the same bundle with service.predictor and nothing else
(benchmarks/serving_path.py's lite path):
  - memory of the gunicorn worker and master after N float32 predictions (and of the worker
    again after N JSON ones): RSS, peak RSS and PSS (shared pages split between processes),
    from /proc; vs the bare interpreter after N predictions and `python -c "import numpy"`.
    No cgroup: the kernel's own count under a 512 MB limit is what the gate stage measures.
  - median and p95 latency over loopback HTTP with a raw float32 body and with a JSON body,
    vs the bare Predictor.predict_proba call on one sample;
  - cold start: from spawning gunicorn to the first 200 on /api/health/ and on /api/predict/.
Prints three small markdown tables. Not a test: pytest collects only tests/.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import requests

from pipeline.gate import free_port, render_start_command
from pipeline.paths import REPO_ROOT, Workspace
from service.bundle import read_manifest

FLOAT32_HEADERS = {"Content-Type": "application/octet-stream"}
JSON_HEADERS = {"Content-Type": "application/json"}
# Runs a module as __main__ (or only imports numpy), then prints its own memory as a last line.
# /proc/self/status, not wait4's ru_maxrss: that one keeps the forking parent's peak over exec.
WITH_MEMORY = """
import runpy, sys
sys.argv = sys.argv[1:]
if sys.argv:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    import numpy
memory = {
    line.split(":")[0]: int(line.split()[1]) / 1024
    for line in open("/proc/self/status")
    if line.startswith(("VmRSS:", "VmHWM:"))
}
print(memory["VmRSS"], memory["VmHWM"])
"""


def memory_of(pid: int) -> dict[str, float]:
    """RSS, peak RSS and PSS of a live process, in MB."""
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                figures["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                figures["peak_rss_mb"] = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                figures["pss_mb"] = int(line.split()[1]) / 1024
    return figures


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def run_with_memory(module_and_args: list[str]) -> tuple[list[str], dict[str, float]]:
    """`python -m <module> <args>` (or `import numpy` alone): its stdout lines and memory."""
    completed = subprocess.run(
        [sys.executable, "-c", WITH_MEMORY, *module_and_args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if completed.returncode:
        raise SystemExit(f"{module_and_args[:1]} failed: {completed.stderr[-2000:]}")
    *lines, memory = completed.stdout.splitlines()
    rss_mb, peak_rss_mb = (float(value) for value in memory.split())
    return lines, {"rss_mb": rss_mb, "peak_rss_mb": peak_rss_mb}


def run_bare(model_dir: Path, samples: np.ndarray, predictions: int) -> dict:
    """The Predictor alone in a fresh interpreter: latencies, cold start and memory."""
    with tempfile.TemporaryDirectory() as scratch:
        samples_path = Path(scratch) / "samples.npz"
        np.savez(samples_path, X=samples)
        lines, memory = run_with_memory(
            [
                "benchmarks.serving_path",
                "--path=lite",
                f"--model={model_dir}",
                f"--samples={samples_path}",
                f"--count={predictions}",
            ]
        )
    _, numpy_only = run_with_memory([])
    return {**orjson.loads(lines[-1]), "memory": memory, "numpy_only": numpy_only}


def first_200(session: requests.Session, method: str, url: str, deadline: float, **kwargs):
    """perf_counter time at which `url` first answers 200, polled every 10 ms."""
    while time.perf_counter() < deadline:
        try:
            if session.request(method, url, timeout=2, **kwargs).status_code == 200:
                return time.perf_counter()
        except requests.ConnectionError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{url} did not answer 200 before the deadline")


def timed_posts(session, url: str, bodies: list[bytes], headers: dict, count: int) -> list[float]:
    """Milliseconds for each of `count` sequential POSTs, cycling through `bodies`."""
    latencies_ms = []
    for index in range(count):
        started = time.perf_counter()
        response = session.post(url, data=bodies[index % len(bodies)], headers=headers, timeout=30)
        latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"prediction failed: {response.status_code} {response.text[:300]}")
    return latencies_ms


def run_service(model_dir: Path, samples: np.ndarray, predictions: int) -> dict:
    """Serve with render.yaml's command: cold start, then memory and latency for both bodies."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PORT": str(port),
        "MODEL_DIR": str(model_dir),
    }
    float32_bodies = [sample.astype("<f4").tobytes() for sample in samples]
    json_bodies = [orjson.dumps({"instances": sample.tolist()}) for sample in samples]
    predict_url = f"{url}/api/predict/"
    started = time.perf_counter()
    process = subprocess.Popen(
        ["bash", "-c", render_start_command(REPO_ROOT / "render.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with requests.Session() as session:
            deadline = started + 60
            health_at = first_200(session, "GET", f"{url}/api/health/", deadline)
            predict_at = first_200(
                session,
                "POST",
                predict_url,
                deadline,
                data=float32_bodies[0],
                headers=FLOAT32_HEADERS,
            )
            worker_pid = session.get(f"{url}/api/health/", timeout=5).json()["worker_pid"]
            master_pid = parent_of(worker_pid)
            float32_ms = timed_posts(
                session, predict_url, float32_bodies, FLOAT32_HEADERS, predictions
            )
            after_float32 = {"worker": memory_of(worker_pid), "master": memory_of(master_pid)}
            json_ms = timed_posts(session, predict_url, json_bodies, JSON_HEADERS, predictions)
            worker_after_json = memory_of(worker_pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return {
        "cold_start_health_seconds": health_at - started,
        "cold_start_predict_seconds": predict_at - started,
        "float32_ms": float32_ms,
        "json_ms": json_ms,
        "after_float32": after_float32,
        "worker_after_json": worker_after_json,
        "float32_body_kb": len(float32_bodies[0]) / 1024,
        "json_body_kb": len(json_bodies[0]) / 1024,
    }


def print_tables(predictions: int, bare: dict, served: dict) -> None:
    worker, master = served["after_float32"]["worker"], served["after_float32"]["master"]
    both = {key: worker[key] + master[key] for key in worker}
    print(f"\nMemory (MB) after {predictions} predictions; no cgroup, figures from /proc")
    print("| process | RSS | peak RSS | PSS |\n|---|---|---|---|")
    for label, figures in (
        ("python -c 'import numpy'", bare["numpy_only"]),
        (f"bare interpreter + Predictor, {predictions} predictions", bare["memory"]),
        ("gunicorn worker, float32 bodies", worker),
        ("gunicorn master", master),
        ("gunicorn worker + master", both),
        (f"gunicorn worker after {predictions} more as JSON", served["worker_after_json"]),
    ):
        pss = f"{figures['pss_mb']:.1f}" if "pss_mb" in figures else ""
        print(f"| {label} | {figures['rss_mb']:.1f} | {figures['peak_rss_mb']:.1f} | {pss} |")

    print(f"\nLatency (ms), {predictions} sequential requests each, keep-alive, loopback")
    print("| path | median | p95 |\n|---|---|---|")
    for label, latencies in (
        ("bare Predictor.predict_proba, one sample", bare["latencies_ms"]),
        (f"HTTP, float32 body ({served['float32_body_kb']:.0f} KB)", served["float32_ms"]),
        (f"HTTP, JSON body ({served['json_body_kb']:.0f} KB)", served["json_ms"]),
    ):
        median, p95 = statistics.median(latencies), float(np.percentile(latencies, 95))
        print(f"| {label} | {median:.2f} | {p95:.2f} |")

    print("\nCold start (s)\n| measure | seconds |\n|---|---|")
    for label, seconds in (
        ("bare interpreter: start to first prediction", bare["cold_start_seconds"]),
        ("gunicorn: spawn to first 200 on /api/health/", served["cold_start_health_seconds"]),
        ("gunicorn: spawn to first 200 on /api/predict/", served["cold_start_predict_seconds"]),
    ):
        print(f"| {label} | {seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Workspace().candidate_dir)
    parser.add_argument("--predictions", type=int, default=1000)
    args = parser.parse_args()
    model_dir = args.model_dir.resolve()
    timesteps, features = read_manifest(model_dir)["input"]["shape"]
    samples = np.random.default_rng(0).normal(size=(16, timesteps, features)).astype(np.float32)
    # The service runs first, so the page cache the bare run warms cannot flatter its start.
    served = run_service(model_dir, samples, args.predictions)
    bare = run_bare(model_dir, samples, args.predictions)
    print_tables(args.predictions, bare, served)


if __name__ == "__main__":
    main()
