"""Every path the project uses, built from one root so commands work from any folder.

A `Workspace` is the repository root by default; tests give it a temporary folder with its
own params.yaml, so a stage runs there exactly as it runs in the repository.
"""

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Set by tests and tools to run a stage on another folder laid out like the repository.
WORKSPACE_ENV = "PIPELINE_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    """The folder a stage reads params.yaml from and writes its outputs under."""

    root: Path = REPO_ROOT

    @classmethod
    def from_env(cls) -> "Workspace":
        return cls(Path(os.environ.get(WORKSPACE_ENV, REPO_ROOT)).resolve())

    def resolve(self, path_from_params: str | Path) -> Path:
        """A path from params.yaml: relative to the workspace root unless absolute."""
        path = Path(path_from_params).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def params_path(self) -> Path:
        return self.root / "params.yaml"

    @property
    def render_yaml_path(self) -> Path:
        return self.root / "render.yaml"

    @property
    def demo_dir(self) -> Path:
        return self.root / "data" / "demo"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def candidate_dir(self) -> Path:
        return self.build_dir / "candidate"

    @property
    def parity_predictions_path(self) -> Path:
        return self.build_dir / "parity" / "predictions.npz"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def report_path(self, stage: str) -> Path:
        """reports/<stage>.json: the stage's verdict."""
        return self.reports_dir / f"{stage}.json"

    @property
    def release_dir(self) -> Path:
        return self.root / "release"
