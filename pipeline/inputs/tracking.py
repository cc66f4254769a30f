"""Whether CI could rebuild the candidate: every file `inputs` names must be tracked by git or
by DVC (a committed `.dvc` file, or an output of a committed dvc.yaml stage)."""

import subprocess
from pathlib import Path

from pipeline.inputs.files import InputFileError, InputPaths
from pipeline.params import ParamsError, load_params
from pipeline.paths import Workspace


def _git_tracked(root: Path, paths: list[Path]) -> set[Path]:
    """Which of `paths` git tracks (committed or staged) in the repository at `root`."""
    completed = subprocess.run(
        ["git", "ls-files", "-z", "--", *[str(path) for path in paths]],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        return set()
    return {(root / name).resolve() for name in completed.stdout.split("\0") if name}


def _dvc_outputs(root: Path) -> dict[Path, Path]:
    """Every DVC output in the repository (.dvc files and dvc.yaml stages) -> its DVC file."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:  # git alone: nothing is tracked by DVC
        return {}
    with repo:
        return {
            Path(out.fs_path).resolve(): Path(out.stage.dvcfile.path).resolve()
            for out in repo.index.outs
        }


def untracked_inputs(workspace: Workspace) -> list[str]:
    """One line per input file that neither git nor DVC tracks, naming the fix; [] if none."""
    root = workspace.root.resolve()
    try:
        files = InputPaths.from_params(load_params(workspace).inputs, workspace).files()
    except (InputFileError, ParamsError) as error:
        return [str(error)]
    problems, in_git = [], _git_tracked(root, list(files.values()))
    outputs = None
    for key, path in files.items():
        path = path.resolve()
        if not path.is_relative_to(root):
            problems.append(f"inputs.{key} {path} is outside the repository; CI cannot see it")
            continue
        if path in in_git:
            continue
        outputs = _dvc_outputs(root) if outputs is None else outputs
        owners = [dvcfile for out, dvcfile in outputs.items() if path.is_relative_to(out)]
        if owners and owners[0] in _git_tracked(root, owners):
            continue
        where = f" ({owners[0].relative_to(root)} is not committed)" if owners else ""
        problems.append(
            f"inputs.{key} {path.relative_to(root)} is tracked by neither git nor DVC{where}: "
            "CI's `dvc repro` could not rebuild the candidate; run `python -m pipeline.init` "
            "(or `dvc add` its folder) and commit the .dvc file"
        )
    return problems
