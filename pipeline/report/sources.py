"""The reports a release report compares: the candidate's on disk, a base's from a git ref."""

import csv
import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.paths import Workspace
from service.errors import Refusal

STAGES = ("convert", "parity", "gate")
PER_CLASS_CSV = "parity_per_class.csv"
CONFIDENCE_CSV = "parity_confidence.csv"


class ReportError(Refusal):
    """The report cannot be made as asked; the message names the problem and the fix."""


@dataclass
class Reports:
    """One side of the comparison: each stage's verdict (None: not there) and parity's plots."""

    name: str
    verdicts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    per_class: list[dict[str, str]] | None = None
    confidence: list[dict[str, str]] | None = None

    def verdict(self, stage: str) -> dict[str, Any]:
        return self.verdicts.get(stage) or {}

    @property
    def candidate_sha256(self) -> str | None:
        shas = [v.get("candidate_sha256") for v in self.verdicts.values() if v]
        return next((sha for sha in shas if sha), None)


def parse_csv(text: str | None) -> list[dict[str, str]] | None:
    return None if text is None else list(csv.DictReader(io.StringIO(text)))


def parse_verdict(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        verdict = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{where} is not valid JSON ({error}); run dvc repro again") from None
    if not isinstance(verdict, dict):
        raise ReportError(f"{where} holds {type(verdict).__name__}, not a verdict object")
    return verdict


def read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def candidate_reports(workspace: Workspace) -> Reports:
    """The reports under the workspace's reports/ folder, as the pipeline left them."""
    reports_dir = workspace.reports_dir
    return Reports(
        name="candidate",
        verdicts={
            stage: parse_verdict(read_text(workspace.report_path(stage)), f"reports/{stage}.json")
            for stage in STAGES
        },
        per_class=parse_csv(read_text(reports_dir / PER_CLASS_CSV)),
        confidence=parse_csv(read_text(reports_dir / CONFIDENCE_CSV)),
    )


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )


def resolve_ref(workspace: Workspace, ref: str) -> str:
    """The commit `ref` names, or ReportError saying how to make it available."""
    found = git(workspace.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise ReportError(
            f"the base {ref!r} is not a commit in this repository; fetch it first "
            f"(e.g. `git fetch origin main` and pass origin/main) or leave out --base"
        )
    return found.stdout.strip()


def base_reports(workspace: Workspace, ref: str) -> Reports:
    """The reports committed at `ref` (main holds the promoted candidate's); absent ones None."""
    commit = resolve_ref(workspace, ref)
    prefix = git(workspace.root, "rev-parse", "--show-prefix").stdout.strip()

    def show(name: str) -> str | None:
        shown = git(workspace.root, "show", f"{commit}:{prefix}reports/{name}")
        return shown.stdout if shown.returncode == 0 else None

    # A full commit id, as promotion and CI pass, is shown as its short form.
    name = ref[:8] if re.fullmatch(r"[0-9a-f]{40}", ref) else ref
    return Reports(
        name=name,
        verdicts={
            stage: parse_verdict(show(f"{stage}.json"), f"{ref}:reports/{stage}.json")
            for stage in STAGES
        },
        per_class=parse_csv(show(PER_CLASS_CSV)),
        confidence=parse_csv(show(CONFIDENCE_CSV)),
    )
