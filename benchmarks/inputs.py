"""What `make bench` measures on: a bundle per quantization mode, the held-out samples raw and
normalised, and a venv with tflite-runtime (numpy<2) beside the project's own."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.scratch import scratch_workspace
from pipeline.verdicts import read_json


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# The service's own pins (server, worker class, JSON), with tflite-runtime for ai-edge-litert.
SERVICE_PINS = [
    line.strip()
    for line in (REPO_ROOT / "service" / "requirements.txt").read_text().splitlines()
    if line.split("==")[0] in ("gunicorn", "orjson", "gevent", "packaging")
]
TFLITE_RUNTIME_PINS = ["tflite-runtime==2.14.0", "numpy<2", *SERVICE_PINS]


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
    with np.load(workspace.resolve(params.inputs.heldout)) as heldout:
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
