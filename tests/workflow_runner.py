"""A workflow's `run:` steps, run here as GitHub's runner runs them: the script from the YAML in a
file, `bash --noprofile --norc -eo pipefail` (what `shell: bash` means), the step's own `env:`
with each `${{ ... }}` value given by the test, and GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_ENV,
GITHUB_PATH and RUNNER_TEMP pointing to temporary files."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.paths import REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
VENV_BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def find_step(workflow: str, job: str, name_part: str) -> dict:
    steps = load(workflow)["jobs"][job]["steps"]
    (step,) = [step for step in steps if name_part in step.get("name", "")]
    return step


@dataclass
class StepRun:
    """What a step did: its exit code and output, and what it wrote to the runner's files."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's two forms: `name=value` and `name<<DELIMITER` ... `DELIMITER`."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for body_line in lines:
                if body_line == delimiter:
                    break
                value.append(body_line)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def step_env(step: dict, given: dict[str, str]) -> dict[str, str]:
    """The step's `env:`: a literal as written unless the test overrides it, an expression's
    value from the test (which must give every one, and nothing the step does not declare)."""
    declared = {name: str(value) for name, value in (step.get("env") or {}).items()}
    unknown = set(given) - set(declared)
    assert not unknown, f"the step declares no {sorted(unknown)} in its env"
    missing = [name for name, value in declared.items() if "${{" in value and name not in given]
    assert not missing, f"give the value of {missing} (expressions in the step's env)"
    return {**declared, **given}


def run_step(
    step: dict,
    cwd: Path,
    runner_temp: Path,
    env: dict[str, str] | None = None,
    path_first: Path | None = None,
    runner_env: dict[str, str] | None = None,
) -> StepRun:
    """Run one step's script in `cwd`, GitHub's files under `runner_temp`. `env`: the values of
    the step's own env; `runner_env`: the machine's; `path_first` goes before the runner's PATH
    (a stand-in for what cannot run here, such as `gh`)."""
    runner_temp.mkdir(parents=True, exist_ok=True)
    files = {
        name: runner_temp / f"{name.lower()}.txt"
        for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH")
    }
    for path in files.values():
        path.write_text("")
    script = runner_temp / "step.sh"
    script.write_text(step["run"])
    base = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    search_path = os.pathsep.join(
        [*([str(path_first)] if path_first else []), str(VENV_BIN), base.get("PATH", "")]
    )
    completed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env={
            **base,
            "PATH": search_path,
            **(runner_env or {}),
            "RUNNER_TEMP": str(runner_temp),
            **{name: str(path) for name, path in files.items()},
            **step_env(step, env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    return StepRun(
        completed.returncode,
        completed.stdout,
        completed.stderr,
        parse_outputs(files["GITHUB_OUTPUT"].read_text()),
        files["GITHUB_STEP_SUMMARY"].read_text(),
    )
