"""Stage `convert`: the user's Keras model -> `build/candidate/` (model.tflite + manifest.json).

The TensorFlow work runs in a child process (pipeline.conversion.worker); this process judges
the result on the lite runtime the service uses and moves it into place only when it passed,
so a failed run leaves `build/candidate/` absent rather than half-written.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.conversion.worker import ERROR_PREFIX, USER_ERROR
from pipeline.inputs.files import InputPaths
from pipeline.params import load_params
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import read_json, write_json, write_verdict
from service.bundle import (
    BATCHED_MODEL_NAME,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MODEL_NAME,
    sha256_of,
)
from service.errors import Refusal
from service.predictor import Predictor


class ConversionFailed(Refusal):
    """The candidate could not be produced; the message is the one-line reason."""


class ConverterWorkerError(RuntimeError):
    """The conversion worker died of an exception it did not expect: our bug, not the user's
    model; its traceback is echoed above the stage's own."""


def run_worker(job: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
    """Run the converter child; its conversion.json, ConversionFailed with the reason when the
    user's files or the converter are at fault, or ConverterWorkerError for our own bug."""
    job_path = Path(job["out_dir"]) / "job.json"
    write_json(job_path, job)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "pipeline.conversion.worker", str(job_path)],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout_seconds,
        )
    except subprocess.TimeoutExpired:
        raise ConversionFailed(
            f"the converter ran past convert.timeout_seconds={timeout_seconds} and was stopped; "
            "raise convert.timeout_seconds in params.yaml if this model needs longer"
        ) from None
    finally:
        job_path.unlink(missing_ok=True)
    if completed.returncode == 0:
        return read_json(Path(job["out_dir"]) / "conversion.json")
    lines = completed.stderr.strip().splitlines()
    if completed.returncode == USER_ERROR and lines and lines[-1].startswith(ERROR_PREFIX):
        sys.stderr.write("\n".join(lines[-20:]) + "\n")
        raise ConversionFailed(lines[-1].removeprefix(ERROR_PREFIX))
    if completed.returncode < 0:
        sys.stderr.write("\n".join(lines[-20:]) + "\n")
        crash = signal.Signals(-completed.returncode).name
        raise ConversionFailed(
            f"the TFLite converter crashed ({crash}) with quantization={job['quantization']}; "
            "this is a converter bug, not your model's: pick another convert.quantization"
        )
    sys.stderr.write(completed.stderr)
    raise ConverterWorkerError(
        f"internal error: the conversion worker exited with code {completed.returncode} "
        f"({lines[-1] if lines else 'no message'}; its traceback is above); please report it"
    )


def build_manifest(
    bundle_dir: Path, conversion: dict, quantization: str, source: Path, batch_size: int
) -> dict:
    """The bundle's manifest: contract, labels, preprocessing, hashes and provenance."""
    model_path = bundle_dir / MODEL_NAME
    model_sha256 = sha256_of(model_path)
    batched_path = bundle_dir / BATCHED_MODEL_NAME
    batched_sha256 = sha256_of(batched_path)
    return {
        "schema": MANIFEST_SCHEMA,
        "version": f"candidate-{model_sha256[:12]}",
        "model_file": MODEL_NAME,
        "sha256": model_sha256,
        "files": {
            MODEL_NAME: {"sha256": model_sha256, "bytes": model_path.stat().st_size},
            BATCHED_MODEL_NAME: {"sha256": batched_sha256, "bytes": batched_path.stat().st_size},
        },
        # The same model with a fixed batch: the service runs samples that arrive together
        # through it (a lone one through model_file).
        "batched": {"file": BATCHED_MODEL_NAME, "sha256": batched_sha256, "batch_size": batch_size},
        "input": {
            "shape": conversion["sample_shape"],
            "dtype": "float32",
            "layout": "raw samples of this shape (one sample, no batch axis); the service "
            "applies preprocessing",
        },
        "output": {
            "classes": conversion["classes"],
            "kind": conversion["output_kind"],
            "kind_evidence": conversion["output_evidence"],
        },
        "labels": conversion["labels"],
        "preprocessing": conversion["preprocessing"],
        "quantization": quantization,
        "source_model": {"file": source.name, "sha256": sha256_of(source)},
        "tools": conversion["tools"],
    }


def judge_builtin_ops(model_path: Path) -> list[str]:
    """The graph's op names; ConversionFailed if any is not a TFLite builtin."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.schema_py_generated import BuiltinOperator

    builtin = {name for name in vars(BuiltinOperator) if name.isupper()} - {"CUSTOM", "DELEGATE"}
    # Without default delegates: XNNPACK would fold the graph into one DELEGATE node.
    interpreter = Interpreter(
        model_path=str(model_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    foreign = sorted(set(ops) - builtin)
    if foreign:
        raise ConversionFailed(f"the candidate uses non-builtin ops {foreign}; it cannot be served")
    return ops


def convert(workspace: Workspace) -> None:
    """Convert, check on the lite runtime, and publish build/candidate/ with its report."""
    candidate_dir = workspace.candidate_dir
    report: dict[str, Any] = {"quantization": None, "passed": False}
    shutil.rmtree(candidate_dir, ignore_errors=True)
    partial_dir = workspace.build_dir / ".candidate.partial"
    shutil.rmtree(partial_dir, ignore_errors=True)
    partial_dir.mkdir(parents=True)
    started = time.perf_counter()
    try:
        params = load_params(workspace)
        settings = params.convert
        quantization = report["quantization"] = settings.quantization
        inputs = InputPaths.from_params(params.inputs, workspace)
        job = {
            "workspace": str(workspace.root),
            "inputs": params.data["inputs"],
            "quantization": quantization,
            "representative_samples": settings.representative_samples,
            "batch_size": settings.batch_size,
            "out_dir": str(partial_dir),
        }
        conversion = run_worker(job, float(settings.timeout_seconds))
        (partial_dir / "conversion.json").unlink()
        manifest = build_manifest(
            partial_dir, conversion, quantization, inputs.model, settings.batch_size
        )
        write_json(partial_dir / MANIFEST_NAME, manifest)
        check_started = time.perf_counter()
        predictor = Predictor(partial_dir)
        ops = judge_builtin_ops(predictor.model_path)
        ops_batched = judge_builtin_ops(partial_dir / BATCHED_MODEL_NAME)
        # Run each once: a file can load and still fail at invoke (e.g. READ_VARIABLE ops).
        zeros = np.zeros((1, *predictor.contract.sample_shape), np.float32)
        predictor.predict_proba(zeros, route="single")
        predictor.predict_proba(zeros, route="batched")
        report.update(
            passed=True,
            candidate_sha256=manifest["sha256"],
            source_model_sha256=manifest["source_model"]["sha256"],
            ops=sorted(set(ops)),
            op_count=len(ops),
            batch_size=settings.batch_size,
            batched_ops=sorted(set(ops_batched)),
            runtime=f"{predictor.runtime.name} {predictor.runtime.version}",
            sizes_bytes={
                "source_model": inputs.model.stat().st_size,
                "tflite": manifest["files"][MODEL_NAME]["bytes"],
                "tflite_batched": manifest["files"][BATCHED_MODEL_NAME]["bytes"],
            },
            sample_shape=manifest["input"]["shape"],
            output_kind=manifest["output"]["kind"],
            output_kind_evidence=manifest["output"]["kind_evidence"],
            parameters=conversion["parameters"],
            tools=conversion["tools"],
        )
        durations = {
            **conversion["durations_seconds"],
            "runtime_check": round(time.perf_counter() - check_started, 3),
            "total": round(time.perf_counter() - started, 3),
        }
        os.replace(partial_dir, candidate_dir)
    except Refusal as failure:
        report["reason"] = str(failure)
        write_verdict(workspace, "convert", report)
        raise SystemExit(f"convert failed: {failure}") from None
    finally:
        shutil.rmtree(partial_dir, ignore_errors=True)
    write_verdict(workspace, "convert", report)
    # Timings are printed, not kept in the verdict: git holds the verdict, and it must not
    # change when nothing but the clock did (a fresh clone's `make demo` leaves git clean).
    print("convert durations (s): " + ", ".join(f"{k} {v}" for k, v in durations.items()))
    print(
        f"convert passed: {quantization}, input {report['sample_shape']}, "
        f"{report['output_kind']} outputs, {report['sizes_bytes']['tflite']} bytes, "
        f"ops {report['ops']}, sha256 {report['candidate_sha256'][:12]}"
    )


if __name__ == "__main__":
    convert(Workspace.from_env())
