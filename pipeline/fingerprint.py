"""What a stage judged: its deps (with DVC's md5) and params (with values), as dvc.yaml lists them.

A verdict carries `inputs_fingerprint` (written by reports.write_verdict). The same function run
later says whether the verdict still speaks for the files and settings on disk: promote refuses
and the summary prints `stale` when it does not.
"""

import fnmatch
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.paths import REPO_ROOT, Workspace
from service.errors import Refusal

MISSING = "missing"
INTERPOLATION = re.compile(r"\$\{\s*([^}\s]+)\s*\}")
DEFAULT_PARAMS_FILE = "params.yaml"
# Deps that are the project's code, shared by every workspace (the rest is each one's data).
CODE_ROOTS = ("pipeline", "service", "checks", "render.yaml")


class UnknownStage(Refusal):
    """dvc.yaml has no stage of that name."""


def dvc_yaml_path(workspace: Workspace) -> Path:
    """The workspace's own dvc.yaml; a scratch workspace (tests, build/) uses the repository's."""
    own = workspace.root / "dvc.yaml"
    return own if own.is_file() else REPO_ROOT / "dvc.yaml"


def dotted(data: Any, key: str) -> Any:
    """data["a"]["b"] for key "a.b"; MISSING when any part is absent."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


# libyaml's parser where PyYAML has it: the same values as yaml.safe_load (the same constructor
# and resolver), ten times faster, and a verdict check reads dvc.yaml and params.yaml per stage.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}


def stage_inputs(workspace: Workspace, stage: str) -> tuple[list[str], dict[str, list[str]]]:
    """The stage's deps (interpolated with params.yaml, as DVC does) and params keys per file."""
    stages = load_yaml(dvc_yaml_path(workspace)).get("stages", {})
    if stage not in stages:
        raise UnknownStage(f"dvc.yaml has no stage {stage!r}")
    params = load_yaml(workspace.params_path)
    definition = stages[stage]
    deps = [
        INTERPOLATION.sub(lambda match: str(dotted(params, match.group(1))), str(dep))
        for dep in definition.get("deps", [])
    ]
    keys: dict[str, list[str]] = {}
    for entry in definition.get("params", []):
        if isinstance(entry, dict):  # {other.yaml: [key, ...]}
            for file_name, file_keys in entry.items():
                keys.setdefault(file_name, []).extend(file_keys or [])
        else:
            keys.setdefault(DEFAULT_PARAMS_FILE, []).append(str(entry))
    return deps, keys


def resolve_dep(workspace: Workspace, dep: str) -> Path:
    """A dep path as DVC resolves it: against the workspace. A scratch workspace without its own
    dvc.yaml holds data but not code, so code it lacks resolves against the repository."""
    path = workspace.resolve(dep)
    if path.exists() or (workspace.root / "dvc.yaml").is_file():
        return path
    # Only code falls back: a candidate or held-out file missing from the workspace is missing,
    # whatever the repository's own build/ holds.
    if Path(dep).parts[0] not in CODE_ROOTS:
        return path
    return REPO_ROOT / dep


def ignore_patterns(workspace: Workspace) -> list[str]:
    """.dvcignore's patterns (bytecode caches), so a directory hashes as DVC hashes it."""
    path = workspace.root / ".dvcignore"
    if not path.is_file():
        path = REPO_ROOT / ".dvcignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(name: str, is_dir: bool, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if is_dir and fnmatch.fnmatch(name, pattern.rstrip("/")):
                return True
        elif fnmatch.fnmatch(name, pattern.lstrip("/")):
            return True
    return False


def file_md5(path: Path) -> str:
    digest = hashlib.md5()  # DVC's content hash, not security
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dir_md5(path: Path, patterns: list[str]) -> str:
    """DVC's directory hash: md5 of the sorted JSON list of {md5, relpath}, plus ".dir"."""
    entries = []
    for child in sorted(path.rglob("*")):
        relative = child.relative_to(path)
        if any(
            ignored(part, (path / Path(*relative.parts[: index + 1])).is_dir(), patterns)
            for index, part in enumerate(relative.parts)
        ):
            continue
        if child.is_file():
            entries.append({"md5": file_md5(child), "relpath": relative.as_posix()})
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"  # as DVC computes it


def dep_hash(path: Path, patterns: list[str]) -> str:
    if path.is_dir():
        return dir_md5(path, patterns)
    if path.is_file():
        return file_md5(path)
    return MISSING


def inputs_fingerprint(workspace: Workspace, stage: str) -> dict[str, Any]:
    """{"deps": {path: md5}, "params": {"params.yaml": {key: value}}, "digest": sha256}."""
    deps, keys = stage_inputs(workspace, stage)
    patterns = ignore_patterns(workspace)
    dep_hashes = {dep: dep_hash(resolve_dep(workspace, dep), patterns) for dep in deps}
    params = {
        file_name: {key: dotted(load_yaml(workspace.resolve(file_name)), key) for key in file_keys}
        for file_name, file_keys in keys.items()
    }
    body = {"deps": dep_hashes, "params": params}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    return {**body, "digest": digest}


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """{"gate.max_peak_memory_mb": 450, ...} for a params section, so a change names its key."""
    if isinstance(value, dict) and value:
        flat = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def changes(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between a verdict's fingerprint and the files and params now, in words."""
    if not recorded or "digest" not in recorded:
        return ["the verdict records no inputs fingerprint (it predates fingerprints)"]
    if recorded["digest"] == current["digest"]:
        return []
    found = []
    old_deps, new_deps = recorded.get("deps", {}), current["deps"]
    for dep in sorted(set(old_deps) | set(new_deps)):
        if dep not in new_deps:
            found.append(f"{dep} is no longer a dependency")
        elif dep not in old_deps:
            found.append(f"{dep} became a dependency")
        elif new_deps[dep] == MISSING:
            found.append(f"{dep} is missing")
        elif old_deps[dep] != new_deps[dep]:
            found.append(f"{dep} changed")
    old_params, new_params = recorded.get("params", {}), current["params"]
    for file_name in sorted(set(old_params) | set(new_params)):
        old_flat, new_flat = {}, {}
        for key, value in old_params.get(file_name, {}).items():
            old_flat.update(flatten(value, key))
        for key, value in new_params.get(file_name, {}).items():
            new_flat.update(flatten(value, key))
        found += [
            f"{file_name} {key} changed"
            for key in sorted(set(old_flat) | set(new_flat))
            if old_flat.get(key, MISSING) != new_flat.get(key, MISSING)
        ]
    return found or ["its inputs fingerprint differs"]
