"""What a release holds: the candidate, every verdict that blessed it, a golden set, and the
release report (release.md, release.html) that says why it shipped."""

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.inputs.files import InputPaths
from pipeline.inputs.tracking import untracked_inputs
from pipeline.params import Params
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


def dvc_status(workspace: Workspace, targets: list[str]) -> dict:
    """`dvc status --json --with-deps <targets>` run from the workspace, through DVC's Python
    API in this process: a kill of promote ends it too, and no second interpreter loads DVC."""
    # Imported here: DVC takes a while to import, and only a DVC project needs it.
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.rwlock import RWLockFileCorruptedError, RWLockFileFormatError

    try:
        with contextlib.chdir(workspace.root), Repo(os.curdir) as project:
            return project.status(targets=targets, with_deps=True)
    except (RWLockFileCorruptedError, RWLockFileFormatError) as error:
        raise PromotionRefused(
            f"`dvc status` failed: {error}; a DVC command killed while writing it leaves it so: "
            "promote and rollback (not their dry runs) remove it first when no DVC process "
            "works here"
        ) from None
    except DvcException as error:
        raise PromotionRefused(f"`dvc status` failed: {error}") from None


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
    status = dvc_status(workspace, targets)
    found = []
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, str):
                found.append(f"{stage}: {entry}")
                continue
            for kind, paths in entry.items():
                found.append(f"{stage}: {kind} {describe_status(paths)} (dvc status)")
    return found


# What fixes a stage that failed for the candidate on disk, when its verdict names no fix.
FAILED_STAGE_FIXES = {
    "convert": "fix what it names, then run dvc repro",
    "parity": "the candidate does not answer like Keras: try another convert.quantization, "
    "then run dvc repro (docs/pipeline.md)",
    "gate": "the candidate does not fit the plan: a lighter model or convert.quantization, or "
    "a larger gate.plan, then run dvc repro (docs/gate.md)",
}


def failure_in_words(stage: str, report: dict) -> str:
    """Why the stage failed and what fixes it: the lines its verdict carries (each with its own
    fix), its one-line reason, or else its failed measures and the stage's usual fix."""
    if report.get("failures"):
        return "; ".join(report["failures"])
    if report.get("reason"):
        return report["reason"]
    failed = [
        f"{name} {m['value']} (needs {m['rule']} {m['threshold']})"
        for name, m in report.get("measures", {}).items()
        if not m.get("passed")
    ]
    return f"{', '.join(failed) or 'no measure named'}; {FAILED_STAGE_FIXES.get(stage, '')}"


def blessed_verdicts(workspace: Workspace) -> dict[str, dict]:
    """Every gate's report, if all passed for exactly the candidate and inputs on disk; else
    refused with each reason once and its own fix: a failed stage's own reason and fix, the
    stages that wait on it, and one `run dvc repro` for everything a rerun alone brings up to date
    (what changed since each stage ran, and what `dvc status` lists)."""
    model_path = workspace.candidate_dir / MODEL_NAME
    if not model_path.is_file():
        raise PromotionRefused(f"there is no candidate at {workspace.candidate_dir}; run dvc repro")
    manifest = read_json(workspace.candidate_dir / MANIFEST_NAME)
    failures, waiting, rerun = [], [], []
    if manifest["sha256"] != sha256_of(model_path):
        rerun.append("the candidate's manifest names another model.tflite")
    batched = manifest.get("batched")
    if batched and batched["sha256"] != sha256_of(workspace.candidate_dir / batched["file"]):
        rerun.append(f"the candidate's manifest names another {batched['file']}")
    verdicts, failed_stages = {}, []
    for verdict in stage_verdicts(workspace):
        stage, report = verdict.stage, verdict.report
        if verdict.verdict in (STALE, NOT_RUN) and failed_stages:
            waiting.append(stage)  # a rerun stops at the failed stage: it is the fix
        elif verdict.verdict in (STALE, NOT_RUN):
            rerun.append(f"{stage}: {verdict.detail}")
        elif verdict.verdict == FAILED:
            failures.append(f"{stage} failed: {failure_in_words(stage, report)}")
            failed_stages.append(stage)
        elif stage == "gate" and report.get("enforced") is not True:
            failures.append(
                "gate: the plan's memory and CPU limits were not both enforced by the kernel "
                "where the gate ran, so its figures prove nothing about an OOM kill or the plan's "
                "CPU share; run it where cgroups work (these machines, or the promote workflow)"
            )
        else:
            verdicts[stage] = report
    if waiting:
        failures.append(
            f"{' and '.join(waiting)}: not judged for this candidate; "
            f"{'it runs' if len(waiting) == 1 else 'they run'} once {failed_stages[0]} passes"
        )
    # DVC records no run of a failed stage, nor of any after it: what `dvc status` lists for
    # them follows from the failure. For the others it is the evidence of what changed.
    blocked = GATE_STAGES[GATE_STAGES.index(failed_stages[0]) :] if failed_stages else ()
    rerun += [
        change for change in pipeline_changes(workspace) if change.split(":", 1)[0] not in blocked
    ]
    if rerun:
        failures.append("; ".join(rerun) + "; run dvc repro")
    if failures:
        raise PromotionRefused("; ".join(failures))
    return verdicts


def tracked_inputs(workspace: Workspace) -> None:
    """Refuse inputs that neither git nor DVC tracks: CI could not rebuild the candidate."""
    problems = untracked_inputs(workspace)
    if problems:
        raise PromotionRefused("; ".join(problems))


def golden_set(workspace: Workspace, params: Params, candidate_sha256: str, count: int):
    """A few raw held-out inputs and the candidate's own outputs for them in parity."""
    paths = InputPaths.from_params(params.inputs, workspace)
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise PromotionRefused("parity's saved predictions are for another candidate")
        probabilities = predictions["probabilities"][:count]
        labels = predictions["labels"][:count]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"][: len(probabilities)].astype(np.float32)
    return samples, probabilities, labels


def write_release(
    workspace: Workspace,
    release_dir: Path,
    version: int,
    tag: str,
    source_commit: str,
    params,
    verdicts: dict[str, dict],
) -> dict[str, Any]:
    """Write the bundle of the candidate `verdicts` judged (blessed_verdicts') into
    `release_dir` (a fresh folder); return its manifest. The copies are checked against the
    judged sha256s, so a candidate rebuilt since the check is refused, never shipped."""
    settings = params.promote
    release_dir.mkdir(parents=True)
    shutil.copy2(workspace.candidate_dir / MODEL_NAME, release_dir / MODEL_NAME)
    manifest = read_json(workspace.candidate_dir / MANIFEST_NAME)
    copies = {MODEL_NAME: verdicts["convert"]["candidate_sha256"]}
    if manifest.get("batched"):
        batched_name = manifest["batched"]["file"]
        shutil.copy2(workspace.candidate_dir / batched_name, release_dir / batched_name)
        copies[batched_name] = manifest["batched"]["sha256"]
    if manifest["sha256"] != copies[MODEL_NAME] or any(
        sha256_of(release_dir / name) != sha256 for name, sha256 in copies.items()
    ):
        raise PromotionRefused(
            f"the candidate in {workspace.candidate_dir} changed after its verdicts were checked "
            "(a `dvc repro` beside promote?); promote again once it has finished"
        )
    samples, probabilities, labels = golden_set(
        workspace, params, manifest["sha256"], int(settings.golden_samples)
    )
    np.savez(release_dir / GOLDEN_NAME, X=samples, probabilities=probabilities)
    manifest.update(
        version=f"v{version}",
        tag=tag,
        promoted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        git_commit=source_commit,
        params={
            key: params.data[key]
            for key in ("shared", "inputs", "demo_model", "convert", "parity", "gate")
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
            "tolerance": float(settings.golden_tolerance),
        },
        gated_on=verdicts["gate"].get("produced_on"),
        # The plan, CPU_SHARE and workers the gate ran, and those render.yaml deploys.
        deployment=deployment_record(
            verdicts["gate"], params.gate.service_env, workspace.render_yaml_path
        ),
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
