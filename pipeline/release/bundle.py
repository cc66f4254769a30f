"""What a release holds: the candidate, every verdict that blessed it, a golden set, and the
release report (release.md, release.html) that says why it shipped."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.inputs.files import InputPaths
from pipeline.inputs.tracking import untracked_inputs
from pipeline.paths import Workspace
from pipeline.release.deployment import deployment_record
from pipeline.release.errors import PromotionRefused
from pipeline.report.write import write_release_report
from pipeline.summary import FAILED, NOT_RUN, STALE, stage_verdicts
from pipeline.verdicts import GATE_STAGES, read_json, write_json
from pipeline.versions import tool_versions
from service.bundle import MANIFEST_NAME, MODEL_NAME, sha256_of

GOLDEN_NAME = "golden.npz"


def describe_status(paths: Any) -> str:
    """`dvc status --json`'s {path: state} (params: {file: {key: state}}) in words."""
    if not isinstance(paths, dict):
        return str(paths)
    words = []
    for path, state in paths.items():
        if isinstance(state, dict):
            words += [f"{path} {key} {key_state}" for key, key_state in state.items()]
        else:
            words.append(f"{path} {state}")
    return ", ".join(words)


def pipeline_changes(workspace: Workspace) -> list[str]:
    """What `dvc status` says changed, per stage, in the stages that build and judge the
    candidate and every stage or .dvc file upstream of them (the demo's stage only while
    `inputs.folder` is its output); empty when those are up to date.

    Only a workspace with its own dvc.yaml is a DVC project (tests' scratch workspaces are
    not); for those the inputs fingerprints alone decide.
    """
    if not (workspace.root / "dvc.yaml").is_file():
        return []
    # The stages the release depends on that this project's dvc.yaml defines.
    defined = (yaml.safe_load((workspace.root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    targets = [f"dvc.yaml:{stage}" for stage in GATE_STAGES if stage in defined]
    if not targets:
        return []
    completed = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json", "--with-deps", *targets],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise PromotionRefused(f"`dvc status` failed: {completed.stderr.strip()}")
    status = json.loads(completed.stdout or "{}")
    found = []
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, str):
                found.append(f"{stage}: {entry}")
                continue
            for kind, paths in entry.items():
                found.append(f"{stage}: {kind} {describe_status(paths)} (dvc status)")
    return found


def blessed_verdicts(workspace: Workspace) -> dict[str, dict]:
    """Every gate's report, if all passed for exactly the candidate and inputs on disk; else
    refused, naming each stage and what changed since it ran."""
    model_path = workspace.candidate_dir / MODEL_NAME
    if not model_path.is_file():
        raise PromotionRefused(f"there is no candidate at {workspace.candidate_dir}; run dvc repro")
    manifest = read_json(workspace.candidate_dir / MANIFEST_NAME)
    problems = []
    if manifest["sha256"] != sha256_of(model_path):
        problems.append("the candidate's manifest names another model.tflite")
    batched = manifest.get("batched")
    if batched and batched["sha256"] != sha256_of(workspace.candidate_dir / batched["file"]):
        problems.append(f"the candidate's manifest names another {batched['file']}")
    verdicts = {}
    for verdict in stage_verdicts(workspace):
        stage, report = verdict.stage, verdict.report
        if verdict.verdict in (STALE, NOT_RUN):
            problems.append(f"{stage}: {verdict.detail}; run dvc repro")
        elif verdict.verdict == FAILED:
            problems.append(f"{stage}: failed ({verdict.detail})")
        elif stage == "gate" and report.get("enforced") is not True:
            problems.append(
                "gate: the plan's memory and CPU limits were not both enforced by the kernel "
                "where the gate ran, so its figures prove nothing about an OOM kill or the plan's "
                "CPU share; run it where cgroups work (these machines, or the promote workflow)"
            )
        else:
            verdicts[stage] = report
    # The reasons first; what `dvc status` lists after them, as the evidence.
    problems += [f"{change}; run dvc repro" for change in pipeline_changes(workspace)]
    if problems:
        raise PromotionRefused("; ".join(problems))
    return verdicts


def tracked_inputs(workspace: Workspace) -> None:
    """Refuse inputs that neither git nor DVC tracks: CI could not rebuild the candidate."""
    problems = untracked_inputs(workspace)
    if problems:
        raise PromotionRefused("; ".join(problems))


def golden_set(workspace: Workspace, params: dict, candidate_sha256: str, count: int):
    """A few raw held-out inputs and the candidate's own outputs for them in parity."""
    paths = InputPaths.from_params(params["inputs"], workspace)
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise PromotionRefused("parity's saved predictions are for another candidate")
        probabilities = predictions["probabilities"][:count]
        labels = predictions["labels"][:count]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"][: len(probabilities)].astype(np.float32)
    return samples, probabilities, labels


def write_release(
    workspace: Workspace, release_dir: Path, version: int, tag: str, source_commit: str, params
) -> dict[str, Any]:
    """Write the bundle into `release_dir` (a fresh folder); return its manifest."""
    verdicts = blessed_verdicts(workspace)
    settings = params["promote"]
    release_dir.mkdir(parents=True)
    shutil.copy2(workspace.candidate_dir / MODEL_NAME, release_dir / MODEL_NAME)
    manifest = read_json(workspace.candidate_dir / MANIFEST_NAME)
    if manifest.get("batched"):
        batched_name = manifest["batched"]["file"]
        shutil.copy2(workspace.candidate_dir / batched_name, release_dir / batched_name)
    samples, probabilities, labels = golden_set(
        workspace, params, manifest["sha256"], int(settings["golden_samples"])
    )
    np.savez(release_dir / GOLDEN_NAME, X=samples, probabilities=probabilities)
    manifest.update(
        version=f"v{version}",
        tag=tag,
        promoted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        git_commit=source_commit,
        params={
            key: params[key]
            for key in ("shared", "inputs", "demo_model", "convert", "parity", "gate")
            if key in params
        },
        verdicts={
            stage: {
                key: report[key]
                for key in ("passed", "measures", "accuracy", "produced_on")
                if key in report
            }
            for stage, report in verdicts.items()
        },
        golden={
            "file": GOLDEN_NAME,
            "sha256": sha256_of(release_dir / GOLDEN_NAME),
            "labels": [str(label) for label in labels],
            "probabilities": np.round(probabilities.astype(np.float64), 7).tolist(),
            "tolerance": float(settings["golden_tolerance"]),
        },
        gated_on=verdicts["gate"].get("produced_on"),
        # The plan, CPU_SHARE and workers the gate ran, and those render.yaml deploys.
        deployment=deployment_record(verdicts["gate"], params["gate"], workspace.render_yaml_path),
        promotion_tools=tool_versions(),
    )
    manifest["files"][GOLDEN_NAME] = {
        "sha256": manifest["golden"]["sha256"],
        "bytes": (release_dir / GOLDEN_NAME).stat().st_size,
    }
    # Why it shipped: the release report against what the branch shipped before this release.
    for path in write_release_report(workspace, release_dir, source_commit):
        manifest["files"][path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    write_json(release_dir / MANIFEST_NAME, manifest)
    return manifest
