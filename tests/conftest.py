"""Shared fixtures: a small demo workspace, built once per session by the real stages."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from pipeline.gate.render_service import RenderWebService, free_port
from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace


def run_stage(module: str, workspace: Workspace, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m <module>` on a workspace, as `dvc repro` would."""
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(workspace.root)},
        capture_output=True,
        text=True,
        check=check,
    )


def make_workspace(root: Path, **overrides: dict) -> Workspace:
    """A folder laid out like the repository, with params.yaml from the repo plus overrides."""
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    # Small and quick: the same shapes as the real demo, fewer samples and epochs.
    params["demo_model"].update(train_samples=300, heldout_samples=60, epochs=3)
    # The optional accuracy floor, exercised: that smaller demo is right about half the time
    # (chance is 0.1).
    params["parity"]["min_accuracy"] = 0.3
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    inputs = overrides.get("inputs", {})
    if inputs and "folder" not in inputs:
        # Files named by absolute paths: the folder that holds them all is what DVC would watch.
        files = [inputs.get(key) for key in ("model", "labels", "label_encoder", "heldout")]
        params["inputs"]["folder"] = os.path.commonpath([str(Path(f).parent) for f in files if f])
    if "label_encoder" in inputs and "labels" not in inputs:
        params["inputs"].pop("labels", None)  # label_encoder names the labels instead
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The gate starts the service with render.yaml's own start command.
    render_yaml = REPO_ROOT / "render.yaml"
    if render_yaml.exists():
        shutil.copy(render_yaml, root / "render.yaml")
    return Workspace(root)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Workspace:
    """A workspace whose demo model was trained and converted (quantization none) for real."""
    workspace = make_workspace(tmp_path_factory.mktemp("demo"))
    run_stage("pipeline.stages.demo_model", workspace)
    run_stage("pipeline.stages.convert", workspace)
    return workspace


@pytest.fixture(scope="session")
def candidate_dir(demo_workspace) -> Path:
    """The demo candidate bundle (model.tflite + manifest.json)."""
    return demo_workspace.candidate_dir


def write_labels(root: Path, labels: list[str], how: str) -> Path:
    """The labels in output order as a user may keep them: txt, json, or a LabelEncoder."""
    import json

    import joblib
    from sklearn.preprocessing import LabelEncoder

    if how == "txt":
        path = root / "labels.txt"
        path.write_text("\n".join(labels) + "\n")
    elif how == "json":
        path = root / "labels.json"
        path.write_text(json.dumps(labels))
    else:
        path = root / "encoder.joblib"
        joblib.dump(LabelEncoder().fit(labels), path)
    return path


def write_user_files(
    root: Path,
    model,
    *,
    normaliser: str | None = "standard",
    samples: int = 24,
    model_name: str = "model.keras",
    labels: list[str] | None = None,
    labels_as: str = "encoder",
    integer_y: bool = False,
    heldout_x=None,
    heldout_y=None,
) -> dict[str, str]:
    """Write a user's files for `model` (random weights are fine) under `root` and return
    `inputs` for params.yaml. Samples take the model's own input shape; labels default to
    sorted names in a LabelEncoder; the normaliser is fitted per feature (last axis)."""
    import joblib
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    root.mkdir(parents=True, exist_ok=True)
    sample_shape = tuple(model.input_shape[1:])
    classes = model.output_shape[-1]
    rng = np.random.default_rng(3)
    raw = rng.normal(5.0, 3.0, size=(samples, *sample_shape)).astype(np.float32)
    if heldout_x is not None:
        raw = np.asarray(heldout_x, dtype=np.float32)
    labels = labels or [f"class_{index:02d}" for index in range(classes)]
    model.save(root / model_name)
    inputs = {
        "folder": str(root),
        "model": str(root / model_name),
        "labels": str(write_labels(root, labels, labels_as)),
        "normaliser": "none",
        "heldout": str(root / "heldout.npz"),
    }
    if normaliser == "standard":
        scaler = StandardScaler().fit(raw.reshape(-1, sample_shape[-1]))
        joblib.dump(scaler, root / "scaler.joblib")
        inputs["normaliser"] = str(root / "scaler.joblib")
    indices = rng.integers(0, classes, len(raw)) if heldout_y is None else np.asarray(heldout_y)
    y = indices if integer_y or heldout_y is not None else np.array(labels)[indices]
    np.savez(root / "heldout.npz", X=raw, y=y)
    return inputs


DEMO_INPUT_FILES = {
    "model": "model.keras",
    "labels": "labels.txt",
    "normaliser": "normaliser.joblib",
    "heldout": "heldout.npz",
}


@pytest.fixture(scope="session")
def checked_workspace(demo_workspace) -> Workspace:
    """The demo workspace after a real parity run: what the gate and promotion start from."""
    run_stage("pipeline.stages.parity", demo_workspace)
    return demo_workspace


# A real gate run kept quick: two whole CPUs, few requests, a small body limit. Its verdict is
# what promote and smoke tests start from, so wall-clock thresholds that a busy machine flips
# are wide here; the gate's own tests hold them to params.yaml's figures.
QUICK_GATE = {
    "max_cold_start_seconds": 600,
    "max_health_latency_seconds": 600,
    "max_latency_p95_ms": 600_000,
    "max_latency_p99_ms": 600_000,
    "min_throughput_rps": 0,
    "plan": "roomy",
    "plans": {
        "roomy": {
            "memory_mb": 512,
            "cpu_share": 2.0,
            "price_usd_month": 99,
            "max_instances": 100,
            "max_peak_memory_mb": 450,
        }
    },
    "requests": 40,
    "concurrency": 4,
    "cold_start_deadline_seconds": 30,
    "target_rps": 5,
    "service_env": {"MAX_BODY_BYTES": str(256 * 1024)},
}


@pytest.fixture(scope="session")
def gated_workspace(checked_workspace, tmp_path_factory) -> Workspace:
    """A copy of the checked workspace after a real gate run that passed: a real verdict."""
    workspace = workspace_like(
        checked_workspace, tmp_path_factory.mktemp("gated") / "ws", gate=QUICK_GATE
    )
    completed = run_stage("pipeline.stages.gate", workspace, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return workspace


@pytest.fixture(scope="session")
def drifted_candidate_dir(candidate_dir, tmp_path_factory) -> Path:
    """The demo candidate with noise of its weights' size added (tests/drifted_model.py): the
    same shape, labels and source model, other answers. Made once: it needs TensorFlow."""
    destination = tmp_path_factory.mktemp("drifted") / "candidate"
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("drifted_model.py")),
            str(candidate_dir),
            str(destination),
            "--noise=1.0",
        ],
        capture_output=True,
        check=True,
    )
    return destination


def swap_model(bundle_dir: Path, drifted_dir: Path) -> str:
    """Put the drifted model into the bundle at `bundle_dir`, its manifest naming it; sha256."""
    import json

    shutil.copy(drifted_dir / "model.tflite", bundle_dir / "model.tflite")
    drifted = json.loads((drifted_dir / "manifest.json").read_text())
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = drifted["sha256"]
    manifest["files"]["model.tflite"] = drifted["files"]["model.tflite"]
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return drifted["sha256"]


def workspace_like(source: Workspace, root: Path, **overrides: dict) -> Workspace:
    """A new workspace on `source`'s demo files, with a copy of its build/ and any overrides."""
    inputs = {key: str(source.demo_dir / name) for key, name in DEMO_INPUT_FILES.items()}
    inputs["folder"] = str(source.demo_dir)
    workspace = make_workspace(root, inputs=inputs, **overrides)
    if source.build_dir.exists():
        shutil.copytree(source.build_dir, workspace.build_dir)
    return workspace


class RunningService:
    """A real gunicorn started with render.yaml's command, on a loopback port."""

    def __init__(self, model_dir: Path, env: dict | None = None, python_bin: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bin_dir = python_bin or Path(sys.executable).parent
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PORT": str(self.port),
            "MODEL_DIR": str(model_dir),
            **(env or {}),
        }
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"service-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop(), lives as long as the service
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            ["bash", "-c", RenderWebService.read(REPO_ROOT / "render.yaml").start_command],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_answering(self, deadline_seconds: float = 30) -> float:
        """Seconds from start until /api/health/ answers at all (200 or 503)."""
        while time.perf_counter() - self.started < deadline_seconds:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/api/health/", timeout=1)
                return time.perf_counter() - self.started
            # A read timeout: the socket is bound but the worker is still booting (a busy host).
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.02)
        raise RuntimeError(f"service did not answer: {self.log_path.read_text()[-2000:]}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_service():
    """Start real services on demand; every one is stopped after the test."""
    services = []

    def start(model_dir: Path, **kwargs) -> RunningService:
        service = RunningService(model_dir, **kwargs)
        services.append(service)
        service.wait_until_answering()
        return service

    yield start
    for service in services:
        service.stop()


@pytest.fixture(scope="module")
def demo_service(candidate_dir):
    """One real gunicorn serving the demo candidate, shared by a test module."""
    service = RunningService(candidate_dir)
    try:
        service.wait_until_answering()
        yield service
    finally:  # also when it never answered: no gunicorn left behind
        service.stop()


def class_signal_samples(count: int, classes: int, shift: float, seed: int):
    """Flat samples (2 features per class) whose class raises its own two features by `shift`
    over unit noise, and their class ids: `shift` sets how well any model can do."""
    import numpy as np

    rng = np.random.default_rng(seed)
    class_ids = rng.integers(0, classes, count)
    samples = rng.normal(0.0, 1.0, size=(count, 2 * classes)).astype(np.float32)
    for class_id in range(classes):
        samples[class_ids == class_id, 2 * class_id : 2 * class_id + 2] += shift
    return samples, class_ids


def trained_dense_classifier(classes: int, shift: float):
    """A one-layer softmax classifier trained (about 2 s) on class_signal_samples: a shift of
    2.5 gives about 0.9 held-out accuracy on 12 classes, 0.6 about 0.3 on 6."""
    import keras

    keras.utils.set_random_seed(11)
    samples, class_ids = class_signal_samples(50 * classes, classes, shift, seed=0)
    model = keras.Sequential(
        [keras.Input((2 * classes,)), keras.layers.Dense(classes, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(samples, class_ids, epochs=10, batch_size=32, verbose=0)
    return model
