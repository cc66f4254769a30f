"""Every path the project uses, built from the repository root so commands work from any folder."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

PARAMS_PATH = REPO_ROOT / "params.yaml"
RENDER_YAML_PATH = REPO_ROOT / "render.yaml"

DATA_DIR = REPO_ROOT / "data"
DEMO_DIR = DATA_DIR / "demo"

BUILD_DIR = REPO_ROOT / "build"
CANDIDATE_DIR = BUILD_DIR / "candidate"
PARITY_DIR = BUILD_DIR / "parity"
PARITY_PREDICTIONS_PATH = PARITY_DIR / "predictions.npz"

REPORTS_DIR = REPO_ROOT / "reports"
CONVERT_REPORT_PATH = REPORTS_DIR / "convert.json"
PARITY_REPORT_PATH = REPORTS_DIR / "parity.json"
PARITY_PLOT_PATH = REPORTS_DIR / "parity_per_class.csv"
GATE_REPORT_PATH = REPORTS_DIR / "gate.json"

RELEASE_DIR = REPO_ROOT / "release"


def resolve(path_from_params: str | Path) -> Path:
    """A path from params.yaml, relative to the repository root unless absolute."""
    path = Path(path_from_params).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path
