"""Bring your own model: `python -m pipeline.init --model ... --labels ... --heldout ...`.

Copies the user's files into one folder (`model/` by default), tracks that folder with DVC
(`dvc add`: git holds only `model.dvc`), points params.yaml's `inputs` at the copies and says
what to commit. The pipeline then needs no other edit, whatever the combination of files.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.inputs.files import KERAS_SUFFIXES, InputFileError, require_file
from pipeline.paths import Workspace

DEFAULT_FOLDER = "model"


def copy_inputs(sources: dict[str, Path | None], folder: Path) -> dict[str, str | None]:
    """Copy each source into a fresh `folder` (replacing the one there only once all copied);
    the new files' names by key. A source inside the folder replaced is read before it goes."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    names: dict[str, str | None] = {}
    try:
        for key, source in sources.items():
            if source is None:
                names[key] = None
                continue
            # The model keeps its suffix (.keras/.h5), custom objects their module name.
            name = source.name if key == "custom_objects" else f"{key}{source.suffix.lower()}"
            shutil.copy2(source, partial / name)
            names[key] = name
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(partial, folder)
    shutil.rmtree(old, ignore_errors=True)
    return names


def inputs_block(folder: str, names: dict[str, str | None]) -> list[str]:
    """params.yaml's `inputs` section for the files in `folder`."""

    def path(key: str) -> str:
        return f"{folder}/{names[key]}" if names.get(key) else "none"

    return [
        "inputs:",
        f"  folder: {folder}                  # written by python -m pipeline.init; tracked by DVC",
        f"  model: {path('model')}",
        f"  labels: {path('labels')}",
        f"  normaliser: {path('normaliser')}",
        f"  heldout: {path('heldout')}",
        f"  custom_objects: {path('custom_objects')}",
        "  allow_unsafe_deserialization: false",
    ]


def rewrite_inputs(params_path: Path, block: list[str]) -> None:
    """Replace the `inputs:` section of params.yaml, keeping every other line and comment."""
    lines = params_path.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index("inputs:")
    except ValueError:
        raise InputFileError(f"{params_path} has no top-level `inputs:` section") from None
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "#"))):
        end += 1
    # Keep the blank line and comments that belong to the next section.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    partial = params_path.with_name(f".{params_path.name}.partial")
    partial.write_text("\n".join([*lines[:start], *block, *lines[end:]]) + "\n", encoding="utf-8")
    os.replace(partial, params_path)


def dvc_add(root: Path, folder: str) -> None:
    """`dvc add <folder>`: DVC keeps the files, git gets `<folder>.dvc` (staged: autostage)."""
    completed = subprocess.run(
        [sys.executable, "-m", "dvc", "add", folder], cwd=root, capture_output=True, text=True
    )
    if completed.returncode != 0:
        said = " ".join((completed.stderr or completed.stdout).split())
        hint = (
            f"; git already holds {folder}/: run `git rm -r --cached {folder}` first"
            if "already tracked by SCM" in said
            else ""
        )
        raise InputFileError(f"`dvc add {folder}` failed: {said}{hint}")


def check_sources(args: argparse.Namespace) -> dict[str, Path | None]:
    """The user's files, each checked to exist and not be an LFS pointer."""
    sources: dict[str, Path | None] = {
        "model": require_file(args.model, "model"),
        "labels": require_file(args.labels, "labels"),
        "normaliser": None,
        "heldout": require_file(args.heldout, "held-out set"),
        "custom_objects": None,
    }
    if sources["model"].suffix.lower() not in KERAS_SUFFIXES:
        raise InputFileError(
            f"model {args.model} has suffix {args.model.suffix!r}; save it with "
            f"model.save('model.keras') (accepted: {', '.join(KERAS_SUFFIXES)})"
        )
    if args.normaliser and str(args.normaliser) != "none":
        sources["normaliser"] = require_file(args.normaliser, "normaliser")
    if args.custom_objects:
        sources["custom_objects"] = require_file(args.custom_objects, "custom objects module")
        if sources["custom_objects"].suffix != ".py":
            raise InputFileError(f"custom objects {args.custom_objects} must be a .py file")
    return sources


def init(workspace: Workspace, args: argparse.Namespace) -> None:
    """Copy, track, point params.yaml at the files and print what to commit."""
    sources = {key: path and path.resolve() for key, path in check_sources(args).items()}
    folder = args.folder.strip("/")
    names = copy_inputs(sources, workspace.resolve(folder))
    dvc_add(workspace.root, folder)
    rewrite_inputs(workspace.params_path, inputs_block(folder, names))
    print(
        f"Copied your files to {folder}/ and tracked it with DVC ({folder}.dvc); params.yaml's "
        f"`inputs` now names them.\nNext:\n"
        f"  dvc repro                 # convert, parity, gate on your model\n"
        f"  git add {folder}.dvc .gitignore params.yaml dvc.lock reports/\n"
        f"  git commit -m 'Bring my model'\n"
        f"  dvc push                  # so CI can `dvc pull` {folder}/ (needs a DVC remote: "
        "dvc remote add -d storage <url>)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.init", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help=".keras or legacy .h5")
    parser.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="labels in output order: .txt (one per line), .json list, or a LabelEncoder",
    )
    parser.add_argument(
        "--heldout", type=Path, required=True, help=".npz with X (raw samples) and y"
    )
    parser.add_argument("--normaliser", type=Path, help="fitted sklearn scaler (joblib)")
    parser.add_argument("--custom-objects", type=Path, help=".py defining custom layers")
    parser.add_argument("--folder", default=DEFAULT_FOLDER, help="where the copies go")
    args = parser.parse_args(argv)
    try:
        init(Workspace.from_env(), args)
    except InputFileError as error:
        print(f"init failed: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
