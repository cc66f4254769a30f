"""`make bench`: every way to serve the model, side by side in one run, under a 512 MB cgroup.

For each path: the kernel's peak memory and OOM kills with one and with two processes,
cold start to first prediction, in-process latency percentiles and throughput; for the
paths that serve, HTTP latency over loopback with gunicorn as render.yaml starts it.
Then the service's worker CPU per request against a bare invoke(), both body formats,
unthrottled and at the plan's CPU share (benchmarks/cpu_per_request.py).
Writes reports/benchmark.{json,md,png} and docs/benchmark.png; it never edits the docs' text
(`make docs` copies the tables there).
"""

import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import cpu_per_request
from benchmarks.inputs import log, prepare_bundles, sample_files, tflite_runtime_python
from benchmarks.measure import in_process, over_http, percentiles
from benchmarks.report import write_outputs
from pipeline.cgroups import distribution_libraries
from pipeline.gate.preflight import lite_runtime_libraries
from pipeline.params import load_params
from pipeline.params.sections import BenchParams
from pipeline.paths import REPO_ROOT, Workspace
from service.bundle import MODEL_NAME

# Each path's own libraries, evicted from the page cache before it runs so that every path
# pays for reading them, as on a fresh host (numpy's stay cached: this process maps them).
TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "keras")


def measure_path(
    name, python, path, model, samples, settings: BenchParams, env, libraries, bundle=None
) -> dict:
    limit = settings.memory_limit_mb
    log(f"{name}: one process")
    one = in_process(python, path, model, samples, settings.predictions, limit, 1, env, libraries)
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
                bundle, samples, workers, settings.http_requests, limit, env, libraries
            )
            row[f"http_{workers}w"] = http
    return row


def run(workspace: Workspace) -> None:
    started = time.perf_counter()
    params = load_params(workspace)
    settings = params.bench
    bench_dir = workspace.build_dir / "bench"
    bundles = prepare_bundles(workspace, settings.quantizations)
    converted = {q: b for q, b in bundles.items() if isinstance(b, Path)}
    samples_dir = bench_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    raw, normalised = sample_files(workspace, next(iter(converted.values())), samples_dir)
    model = str(workspace.resolve(params.inputs.model))
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
    if settings.tflite_runtime and "none" in converted:
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
        log(f"CPU per request, unthrottled and at {settings.cpu_share} CPU")
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
        "settings": params.data["bench"],
        "rows": rows,
        "cpu_per_request": cpu,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_outputs(workspace, result)
    log(f"done in {result['seconds']} s")


if __name__ == "__main__":
    run(Workspace.from_env())
