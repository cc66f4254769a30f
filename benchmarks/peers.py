"""`make bench-peers`: the servers users would pick instead, side by side with ours, in one run.

The same candidate bundle (build/candidate) served by MLServer (a custom MLModel runtime on
LiteRT), by BentoML (a small service on LiteRT) and by ours, started exactly as render.yaml
says; each from its own venv under build/peers/, installed from pinned requirements (the
peers': benchmarks/peer_servers/; ours: service/requirements.txt). For each server, unthrottled
and at the plan's CPU share: cold start to its first healthy answer, the CPU the kernel
charged to the service's group per request (one client, then `peer_clients` at once, single
float32 samples in the server's own request format) against a bare batch-1 invoke() of the
same model measured just before in the same CPU share, and the kernel's peak memory for the
whole service (its cgroup). Writes reports/bench/peers.{json,md,png}; `make docs` copies the
table into the README and the chart into docs/.

    python -m benchmarks.peers [--servers ours,mlserver,bentoml]
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from benchmarks.cpu_per_request import bare_cpu_ms
from benchmarks.peer_load import Client, concurrent_clients, lone_client, warm_up
from benchmarks.peer_setup import (
    launch,
    log,
    peer_venv,
    service_files,
    site_packages_files,
)
from benchmarks.peers_report import write_outputs
from benchmarks.traffic import cpu_group, start_server
from pipeline.cgroups import evict_from_page_cache
from pipeline.params import load_params
from pipeline.params.sections import BenchParams
from pipeline.paths import REPO_ROOT, Workspace

PRESSURE_PATH = Path("/proc/pressure/cpu")


@dataclass(frozen=True)
class Server:
    """How to start one server, reach it, and speak its request format."""

    name: str
    health_path: str
    predict_path: str
    content_type: str
    encode: Callable[[np.ndarray], bytes]  # one raw sample -> the request body
    decode: Callable[[bytes], tuple[str, float]]  # the answer -> (top label, its probability)


def _ours_answer(body: bytes) -> tuple[str, float]:
    first = orjson.loads(body)["predictions"][0]
    return first["label"], first["probability"]


def _mlserver_body(sample: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": [1, *sample.shape], "datatype": "FP32"}
    return orjson.dumps({"inputs": [{**tensor, "data": sample.ravel().tolist()}]})


def _mlserver_answer(body: bytes) -> tuple[str, float]:
    outputs = {output["name"]: output for output in orjson.loads(body)["outputs"]}
    return outputs["label"]["data"][0], max(outputs["probabilities"]["data"])


def _bentoml_answer(body: bytes) -> tuple[str, float]:
    first = orjson.loads(body)[0]
    return first["label"], first["probability"]


SERVERS = {
    "ours": Server(
        "ours (render.yaml)",
        "/api/health/",
        "/api/predict/",
        "application/octet-stream",
        lambda sample: sample.astype("<f4").tobytes(),
        _ours_answer,
    ),
    "mlserver": Server(
        "MLServer",
        "/v2/health/ready",
        "/v2/models/classifier/infer",
        "application/json",
        _mlserver_body,
        _mlserver_answer,
    ),
    "bentoml": Server(
        "BentoML",
        "/readyz",
        "/predict",
        "application/json",
        lambda sample: orjson.dumps({"instances": [sample.tolist()]}),
        _bentoml_answer,
    ),
}


def uses_venv(key: str, settings: BenchParams) -> bool:
    """Whether server `key` runs from its own venv under build/peers/ (the peers always do)."""
    return key != "ours" or settings.peer_ours_own_venv


def cpu_pressure() -> dict | None:
    """System-wide CPU pressure (PSI `some`): share of time some task waited for a CPU."""
    if not PRESSURE_PATH.is_file():
        return None
    fields = dict(pair.split("=") for pair in PRESSURE_PATH.read_text().split("\n")[0].split()[1:])
    return {key: float(value) for key, value in fields.items()}


def stalled_share(before: dict | None, after: dict | None, wall_seconds: float) -> float | None:
    """Share of the wall time in which some task waited for a CPU (PSI totals are in us)."""
    if not before or not after or wall_seconds <= 0:
        return None
    return round((after["total"] - before["total"]) / 1e6 / wall_seconds, 3)


def measure(
    key, share, bundle, peers_dir, sample, expected, settings: BenchParams, base_env
) -> dict:
    """One server at one CPU share: bare invoke, cold start, both loads, peak memory."""
    server = SERVERS[key]
    pressure_before, began = cpu_pressure(), time.perf_counter()
    with cpu_group(share, "peers-bare") as group:
        # Rounded once, so every ratio in the table is its two printed figures' quotient.
        bare_ms = round(bare_cpu_ms(bundle, settings.peer_bare_invokes, base_env, group), 3)
    venv = peers_dir / f"{key}-venv" if uses_venv(key, settings) else None
    command, env = launch(key, bundle, peers_dir, base_env, venv)
    libraries = service_files() if venv is None else site_packages_files(venv)
    evict_from_page_cache(bundle, *libraries)
    quota = share is not None
    count = settings.peer_requests_quota if quota else settings.peer_requests
    phase_seconds = settings.peer_phase_seconds
    body = server.encode(sample)
    with cpu_group(share, "peers") as group:  # it stops the server as it closes
        _, port, cold_start = start_server(
            group, command, env, server.health_path, settings.peer_start_deadline_seconds
        )
        clients = [
            Client(port, server.predict_path, body, server.content_type)
            for _ in range(settings.peer_clients)
        ]
        status, answer = clients[0].post()
        if status != 200:
            raise RuntimeError(f"{server.name} answered HTTP {status}: {answer[:300]!r}")
        label, probability = server.decode(answer)
        warm_up(clients[0], settings.peer_warmup_requests, phase_seconds)
        lone = lone_client(group.cpu_usage_seconds, clients[0], count, phase_seconds)
        many = concurrent_clients(group.cpu_usage_seconds, clients, count, phase_seconds)
        for client in clients:
            client.close()
        peak_mb = round(group.peak_mb(), 1)
        throttled_periods, throttled_seconds = group.cpu_throttling()
    wall_seconds = time.perf_counter() - began
    for load in (lone, many):
        load["ratio"] = round(load["cpu_ms"] / bare_ms, 2) if load["cpu_ms"] else None
    row = {
        "server": server.name,
        "cpu": "unthrottled" if share is None else f"{share} CPU",
        "bare_invoke_cpu_ms": bare_ms,
        "cold_start_s": round(cold_start, 3),
        "lone": lone,
        "concurrent": many,
        "peak_mb": peak_mb,
        "answer": {"label": label, "probability": round(probability, 6)},
        "answer_matches": label == expected[0] and abs(probability - expected[1]) <= 1e-4,
        "request_bytes": len(body),
        "throttled_periods": throttled_periods,
        "throttled_s": round(throttled_seconds, 2),
        "cpu_stalled_share": stalled_share(pressure_before, cpu_pressure(), wall_seconds),
    }
    log(f"{server.name}, {row['cpu']}: {orjson.dumps(row).decode()}")
    return row


def run(workspace: Workspace, keys: list[str]) -> dict:
    """Every server in `keys`, unthrottled and at the plan's share, in one run."""
    started, pressure_before = time.perf_counter(), cpu_pressure()
    params = load_params(workspace)
    settings = params.bench
    bundle = workspace.candidate_dir.resolve()
    if not (bundle / "manifest.json").is_file():
        raise SystemExit(f"no bundle at {bundle}: run `dvc repro convert` first")
    peers_dir = workspace.build_dir / "peers"
    peers_dir.mkdir(parents=True, exist_ok=True)
    installs = {}
    for key in keys:
        if uses_venv(key, settings):
            _, seconds = peer_venv(key, peers_dir, settings.peer_install_timeout_seconds)
            installs[key] = seconds
    base_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    heldout_path = workspace.resolve(params.inputs.heldout)
    with np.load(heldout_path) as heldout:
        sample = heldout["X"][0].astype(np.float32)
    expected = orjson.loads(
        subprocess.run(
            [sys.executable, "-m", "benchmarks.peer_reference", str(bundle), str(heldout_path)],
            cwd=REPO_ROOT,
            env=base_env,
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout.splitlines()[-1]
    )
    rows = []
    for key in keys:
        for share in (None, settings.cpu_share):
            setting = "unthrottled" if share is None else f"{share} CPU"
            log(f"{SERVERS[key].name}, {setting}")
            answer = (expected["label"], expected["probability"])
            try:
                row = measure(key, share, bundle, peers_dir, sample, answer, settings, base_env)
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                # A server that does not start or answer is a result too; the others still run.
                reason = str(error).replace(str(REPO_ROOT) + "/", "")[:300]
                row = {"server": SERVERS[key].name, "cpu": setting, "error": reason}
                log(f"{SERVERS[key].name}, {setting}: FAILED: {reason}")
            rows.append(row)
    seconds = time.perf_counter() - started
    result = {
        "machine": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(value, 2) for value in os.getloadavg()],
            "cpu_stalled_share": stalled_share(pressure_before, cpu_pressure(), seconds),
        },
        "settings": {
            key: value for key, value in params.data["bench"].items() if key.startswith("peer")
        }
        | {"cpu_share": settings.cpu_share},
        "bundle_sha256": expected["sha256"],
        "install_seconds": installs,
        "rows": rows,
        "seconds": round(seconds, 1),
    }
    write_outputs(workspace, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated keys")
    keys = parser.parse_args().servers.split(",")
    unknown = [key for key in keys if key not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    result = run(Workspace.from_env(), keys)
    log(f"done in {result['seconds']} s")
    failed = [f"{row['server']} at {row['cpu']}" for row in result["rows"] if "error" in row]
    if failed:
        raise SystemExit(f"not measured: {', '.join(failed)} (reasons in the table)")


if __name__ == "__main__":
    main()
