"""The verdicts and locks in the repository speak for its code and params: a change to what a
stage runs or reads, committed without running that stage again, fails here instead of at
`make demo` ("stale") or at promotion. Only what is the same on every machine is compared
(code and params); the trained model and the candidate are each machine's own."""

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.fingerprint import (
    CODE_ROOTS,
    changes,
    dep_hash,
    ignore_patterns,
    inputs_fingerprint,
    resolve_dep,
)
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import GATE_STAGES, read_json

REPOSITORY = Workspace(REPO_ROOT)
# DVC's own YAML reader: it reads `1e-05` as the number DVC wrote, where PyYAML reads a string.
DVC_YAML = YAML(typ="safe")
LOCKS = {"dvc.lock": GATE_STAGES, "demo/dvc.lock": ("demo_model",)}


def is_code(dep: str) -> bool:
    return Path(dep).parts[0] in CODE_ROOTS


def code_and_params(fingerprint: dict) -> dict:
    """The fingerprint without the deps that are data (the trained model, the candidate)."""
    deps = {dep: md5 for dep, md5 in fingerprint.get("deps", {}).items() if is_code(dep)}
    body = {"deps": deps, "params": fingerprint.get("params", {})}
    return {**body, "digest": repr(sorted(deps.items())) + repr(body["params"])}


def advice(lock: str) -> str:
    return f"; run `dvc repro` (as `make demo` does) and commit {lock} and reports/ with the code"


@pytest.mark.parametrize("stage", GATE_STAGES)
def test_each_committed_verdict_was_produced_by_the_code_and_params_committed_beside_it(stage):
    recorded = read_json(REPOSITORY.report_path(stage)).get("inputs_fingerprint")
    assert recorded, f"reports/{stage}.json records no inputs fingerprint" + advice("dvc.lock")
    now = inputs_fingerprint(REPOSITORY, stage)
    changed = changes(code_and_params(recorded), code_and_params(now))
    assert changed == [], f"reports/{stage}.json: {'; '.join(changed)}" + advice("dvc.lock")


@pytest.mark.parametrize(
    "lock, stage", [(lock, stage) for lock, stages in LOCKS.items() for stage in stages]
)
def test_each_committed_lock_records_the_code_and_params_committed_beside_it(lock, stage):
    entry = DVC_YAML.load((REPO_ROOT / lock).read_text(encoding="utf-8"))["stages"][stage]
    patterns = ignore_patterns(REPOSITORY)
    stale = [
        f"{dep['path']} changed"
        for dep in entry["deps"]
        if is_code(dep["path"])
        and dep["md5"] != dep_hash(resolve_dep(REPOSITORY, dep["path"]), patterns)
    ]
    params = DVC_YAML.load(REPOSITORY.params_path.read_text(encoding="utf-8"))
    for key, value in entry.get("params", {}).get("params.yaml", {}).items():
        current = params
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if current != value:
            stale.append(f"params.yaml {key} changed")
    assert stale == [], f"{lock} {stage}: {'; '.join(stale)}" + advice(lock)
