"""`make bench`: every way to serve the model, side by side in one run, under a 512 MB cgroup.

For each path: the kernel's peak memory and OOM kills with one and with two processes,
cold start to first prediction, in-process latency percentiles and throughput; for the
paths that serve, HTTP latency over loopback with gunicorn as render.yaml starts it.
Then the service's worker CPU per request against a bare invoke(), both body formats,
unthrottled and at the plan's CPU share (benchmarks/cpu_per_request.py).
Writes reports/benchmark.{json,md,png} and docs/benchmark.png; it never edits the docs' text
(`make docs` copies the tables there).
"""

import http.client
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from benchmarks import cpu_per_request
from benchmarks.report import write_outputs
from benchmarks.traffic import start_server
from pipeline.cgroups import distribution_libraries, evict_from_page_cache, memory_limit
from pipeline.gate.render_service import RenderWebService, lite_runtime_libraries
from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.scratch import scratch_workspace
from pipeline.verdicts import read_json
from service.bundle import MODEL_NAME

# Each path's own libraries, evicted from the page cache before it runs so that every path
# pays for reading them, as on a fresh host (numpy's stay cached: this process maps them).
TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "keras")
# The service's own pins (server, worker class, JSON), with tflite-runtime for ai-edge-litert.
SERVICE_PINS = [
    line.strip()
    for line in (REPO_ROOT / "service" / "requirements.txt").read_text().splitlines()
    if line.split("==")[0] in ("gunicorn", "orjson", "gevent", "packaging")
]
TFLITE_RUNTIME_PINS = ["tflite-runtime==2.14.0", "numpy<2", *SERVICE_PINS]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_bundles(workspace: Workspace, quantizations: list[str]) -> dict[str, Path | str]:
    """Convert once per mode; a bundle folder, or the reason the mode does not convert."""
    bundles = {}
    for quantization in quantizations:
        scratch = scratch_workspace(
            workspace, f"bench/{quantization}", convert={"quantization": quantization}
        )
        completed = subprocess.run(
            [sys.executable, "-m", "pipeline.stages.convert"],
            cwd=REPO_ROOT,
            env={**os.environ, WORKSPACE_ENV: str(scratch.root)},
            capture_output=True,
            text=True,
        )
        report = read_json(scratch.report_path("convert"))
        bundles[quantization] = (
            scratch.candidate_dir
            if completed.returncode == 0
            else (report.get("reason", "conversion failed"))
        )
        log(f"convert {quantization}: {'ok' if completed.returncode == 0 else 'failed'}")
    return bundles


def sample_files(workspace: Workspace, bundle: Path, out_dir: Path) -> tuple[Path, Path]:
    """Raw held-out samples (for lite paths) and normalised ones (for Keras paths)."""
    params = load_params(workspace)
    with np.load(workspace.resolve(params["inputs"]["heldout"])) as heldout:
        raw = heldout["X"][:64].astype(np.float32)
    preprocessing = read_json(bundle / "manifest.json")["preprocessing"]
    normalised = raw
    if preprocessing["kind"] == "affine":
        normalised = raw * np.asarray(preprocessing["scale"], np.float32) + np.asarray(
            preprocessing["offset"], np.float32
        )
    np.savez(out_dir / "raw.npz", X=raw)
    np.savez(out_dir / "normalised.npz", X=normalised)
    return out_dir / "raw.npz", out_dir / "normalised.npz"


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


def tflite_runtime_python(bench_dir: Path) -> tuple[str | None, str]:
    """A venv with tflite-runtime (numpy<2); its python, or None and the reason."""
    venv = bench_dir / "tflite-runtime-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *TFLITE_RUNTIME_PINS],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            lines = install.stderr.strip().splitlines() or ["pip failed"]
            return None, f"tflite-runtime does not install here: {lines[-1][:200]}"
    return str(python), "installed"


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


def measure_path(name, python, path, model, samples, settings, env, libraries, bundle=None) -> dict:
    limit = settings["memory_limit_mb"]
    log(f"{name}: one process")
    one = in_process(
        python, path, model, samples, settings["predictions"], limit, 1, env, libraries
    )
    log(f"{name}: two processes")
    two = in_process(python, path, model, samples, 20, limit, 2, env, libraries)
    row = {
        "path": name,
        "runtime": one.get("runtime", ""),
        "peak_mb_1": one["peak_mb"],
        "oom_1": one["oom_kills"] > 0,
        "peak_mb_2": two["peak_mb"],
        "oom_2": two["oom_kills"] > 0,
        "enforced": one["enforced"],
        "cold_start_s": round(one.get("cold_start_seconds", 0), 3),
        **percentiles(one),
        "error": one.get("error"),
    }
    if bundle is not None:
        row["model_bytes"] = (bundle / MODEL_NAME).stat().st_size
        for workers in (1, 2):
            log(f"{name}: HTTP with {workers} worker(s)")
            http = over_http(
                bundle, samples, workers, settings["http_requests"], limit, env, libraries
            )
            row[f"http_{workers}w"] = http
    return row


def run(workspace: Workspace) -> None:
    started = time.perf_counter()
    settings = load_params(workspace)["bench"]
    bench_dir = workspace.build_dir / "bench"
    bundles = prepare_bundles(workspace, settings["quantizations"])
    converted = {q: b for q, b in bundles.items() if isinstance(b, Path)}
    samples_dir = bench_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    raw, normalised = sample_files(workspace, next(iter(converted.values())), samples_dir)
    model = str(workspace.resolve(load_params(workspace)["inputs"]["model"]))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    tensorflow = distribution_libraries(*TENSORFLOW_DISTRIBUTIONS)
    lite = lite_runtime_libraries()
    rows = [
        measure_path(
            "keras model.predict",
            sys.executable,
            "keras-predict",
            model,
            normalised,
            settings,
            env,
            tensorflow,
        ),
        measure_path(
            "tf.function",
            sys.executable,
            "tf-function",
            model,
            normalised,
            settings,
            env,
            tensorflow,
        ),
    ]
    if "none" in converted:
        bare = measure_path(
            "bare interpreter none",
            sys.executable,
            "bare",
            str(converted["none"]),
            normalised,
            settings,
            env,
            lite,
        )
        rows.append(bare | {"model_bytes": (converted["none"] / MODEL_NAME).stat().st_size})
    for quantization, bundle in bundles.items():
        name = f"ai-edge-litert {quantization}"
        if isinstance(bundle, str):
            rows.append({"path": name, "error": bundle})
            continue
        rows.append(
            measure_path(
                name,
                sys.executable,
                "lite",
                str(bundle),
                raw,
                settings,
                {**env, "LITE_RUNTIME": "ai-edge-litert"},
                lite,
                bundle,
            )
        )
    if settings["tflite_runtime"] and "none" in converted:
        python, status = tflite_runtime_python(bench_dir)
        if python is None:
            rows.append({"path": "tflite-runtime none", "error": status})
        else:
            tflite_env = {
                **env,
                "LITE_RUNTIME": "tflite-runtime",
                "PYTHONPATH": str(REPO_ROOT),
                "PATH": f"{Path(python).parent}:{os.environ['PATH']}",
            }
            rows.append(
                measure_path(
                    "tflite-runtime none",
                    python,
                    "lite",
                    str(converted["none"]),
                    raw,
                    settings,
                    tflite_env,
                    sorted(
                        Path(python).parent.parent.glob(
                            "lib/python*/site-packages/tflite_runtime/*.so"
                        )
                    ),
                    converted["none"],
                )
            )
    cpu = None
    if "none" in converted:
        log(f"CPU per request, unthrottled and at {settings['cpu_share']} CPU")
        cpu = cpu_per_request.measure(converted["none"], raw, settings, env)
    machine = {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    result = {
        "machine": machine,
        "settings": settings,
        "rows": rows,
        "cpu_per_request": cpu,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_outputs(workspace, result)
    log(f"done in {result['seconds']} s")


if __name__ == "__main__":
    run(Workspace.from_env())
