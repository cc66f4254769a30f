"""Bring your own model: `python -m pipeline.init --model ... --labels ... --heldout ...`.

Loads the user's files as the pipeline will, refusing anything that does not fit in the names of
the user's own files before it touches anything; then copies them into one folder (`model/` by
default) with a record of where each came from (so a later refusal names the user's own file),
tracks that folder with DVC (`dvc add`: git holds only `model.dvc`), points params.yaml's
`inputs` at the copies and says what to commit and what it left as it was.
The pipeline then needs no other edit, whatever the combination of files.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.inputs.files import (
    KERAS_SUFFIXES,
    InputFileError,
    InputPaths,
    ModelShape,
    load_heldout,
    load_preprocessing,
)
from pipeline.inputs.labels import load_labels
from pipeline.inputs.provenance import write_sources
from pipeline.params import Params, load_params
from pipeline.paths import Workspace
from service.bundle import is_lfs_pointer
from service.errors import Refusal

DEFAULT_FOLDER = "model"
FLAGS = {
    "model": "--model",
    "labels": "--labels",
    "heldout": "--heldout",
    "normaliser": "--normaliser",
    "custom_objects": "--custom-objects",
}


def copy_inputs(
    sources: dict[str, Path | None], folder: Path, init_argv: list[str]
) -> dict[str, str | None]:
    """Copy each source into a fresh `folder` (replacing the one there only once all copied),
    with the record of where each came from; the new files' names by key. A source inside the
    folder replaced is read before it goes."""
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
        copied = {name: sources[key] for key, name in names.items() if name}
        write_sources(partial, copied, init_argv)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(partial, folder)
    shutil.rmtree(old, ignore_errors=True)
    return names


def inputs_block(folder: str, names: dict[str, str | None], allow_unsafe: bool) -> list[str]:
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
        f"  allow_unsafe_deserialization: {str(allow_unsafe).lower()}",
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


def _existing(path: Path, flag: str) -> Path:
    """The file the user passed as `flag`, if it is a real file; else a refusal naming it."""
    if not path.is_file():
        raise InputFileError(f"{flag} {path} does not exist; give the path to your file")
    if is_lfs_pointer(path):
        raise InputFileError(
            f"{flag} {path} is a Git LFS pointer, not the file itself; run `git lfs pull`"
        )
    return path


def check_sources(args: argparse.Namespace) -> dict[str, Path | None]:
    """The user's files, each checked to exist and not be an LFS pointer."""
    sources: dict[str, Path | None] = {
        "model": _existing(args.model, "--model"),
        "labels": _existing(args.labels, "--labels"),
        "normaliser": None,
        "heldout": _existing(args.heldout, "--heldout"),
        "custom_objects": None,
    }
    if sources["model"].suffix.lower() not in KERAS_SUFFIXES:
        raise InputFileError(
            f"--model {args.model} has suffix {args.model.suffix!r}; save it with "
            f"model.save('model.keras') (accepted: {', '.join(KERAS_SUFFIXES)})"
        )
    if args.normaliser and str(args.normaliser) != "none":
        sources["normaliser"] = _existing(args.normaliser, "--normaliser")
    if args.custom_objects:
        sources["custom_objects"] = _existing(args.custom_objects, "--custom-objects")
        if sources["custom_objects"].suffix != ".py":
            raise InputFileError(f"--custom-objects {args.custom_objects} must be a .py file")
    return sources


# The loaders' fixes name params.yaml's keys; before init has written them, the user's flags.
FIXES_IN_FLAGS = {
    "set inputs.custom_objects to a Python module in your repository (a .py file in the inputs "
    "folder)": "pass --custom-objects with a .py file",
    "the module inputs.custom_objects": "the module --custom-objects",
    "set inputs.allow_unsafe_deserialization: true": "pass --allow-unsafe-deserialization",
    "point inputs.model at that": "pass that file as --model",
    "inputs.normaliser: none": "leave out --normaliser",
}


def load_sources(sources: dict[str, Path | None], allow_unsafe: bool) -> ModelShape:
    """Load every file as the pipeline will: the model with its architecture, labels as many
    as its outputs, a per-feature normaliser, held-out samples of its shape with known labels.
    InputFileError (naming the user's own file) on the first that does not fit."""
    from pipeline.inputs.keras_model import load_keras_model

    custom = sources["custom_objects"]
    paths = InputPaths(
        model=sources["model"],
        labels=sources["labels"],
        normaliser=sources["normaliser"],
        heldout=sources["heldout"],
        folder=sources["model"].parent,
        custom_objects=str(custom) if custom else None,
        allow_unsafe_deserialization=allow_unsafe,
    )
    try:
        _, shape = load_keras_model(paths)
        labels = load_labels(paths.labels, shape)
        load_preprocessing(paths.normaliser, shape)
        load_heldout(paths.heldout, shape, labels)
    except InputFileError as error:
        message = str(error)
        for fix, in_flags in FIXES_IN_FLAGS.items():
            message = message.replace(fix, in_flags)
        raise InputFileError(message) from None
    return shape


def init(workspace: Workspace, args: argparse.Namespace) -> None:
    """Check and load the user's files, then copy, track, point params.yaml at them and print
    what to commit; nothing is touched until params.yaml and every file load."""
    params = load_params(workspace)
    sources = {key: path and path.resolve() for key, path in check_sources(args).items()}
    shape = load_sources(sources, args.allow_unsafe_deserialization)
    folder = args.folder.strip("/")
    names = copy_inputs(sources, workspace.resolve(folder), init_argv(sources, args, folder))
    dvc_add(workspace.root, folder)
    block = inputs_block(folder, names, args.allow_unsafe_deserialization)
    rewrite_inputs(workspace.params_path, block)
    print(
        f"Your model loads: samples of shape {shape.sample_shape}, {shape.classes} outputs, "
        f"labels, normaliser and held-out set agree with it.\n"
        f"Copied your files to {folder}/ (where each came from: {folder}/sources.json) and "
        f"tracked it with DVC ({folder}.dvc); params.yaml's "
        f"`inputs` now names them.\n{kept_settings(params)}\nNext:\n"
        f"  dvc repro                 # convert, parity, gate on your model\n"
        f"  git add {folder}.dvc .gitignore params.yaml dvc.lock reports/\n"
        f"  git commit -m 'Bring my model'\n"
        f"  dvc push                  # so CI can `dvc pull` {folder}/ (needs a DVC remote: "
        "dvc remote add -d storage <url>)\n"
        f"  python -m pipeline.promote   # once `python -m pipeline.summary` says PASSED"
    )


def init_argv(sources: dict[str, Path | None], args: argparse.Namespace, folder: str) -> list[str]:
    """The init command that brings these files in again, every path absolute."""
    argv = ["python", "-m", "pipeline.init"]
    for key, flag in FLAGS.items():
        if sources[key] is not None:
            argv += [flag, str(sources[key])]
    if args.allow_unsafe_deserialization:
        argv.append("--allow-unsafe-deserialization")
    if folder != DEFAULT_FOLDER:
        argv += ["--folder", folder]
    return argv


def kept_settings(params: Params) -> str:
    """The settings init left as they were in params.yaml that judge the user's model."""
    floor = params.parity.min_accuracy
    floor_words = (
        "null: no floor on accuracy (set one to refuse a model under it)"
        if floor is None
        else f"{floor}: parity refuses a model whose held-out accuracy is under it"
    )
    return (
        "Left as they were in params.yaml (edit them to suit your model):\n"
        f"  convert.quantization: {params.convert.quantization}\n"
        f"  parity.min_accuracy: {floor_words}\n"
        f"  gate.plan: {params.gate.plan} (the Render plan the gate emulates)"
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
    parser.add_argument(
        "--allow-unsafe-deserialization",
        action="store_true",
        help="load a model with Lambda layers (runs their code: only for a file you trust)",
    )
    parser.add_argument("--folder", default=DEFAULT_FOLDER, help="where the copies go")
    args = parser.parse_args(argv)
    try:
        init(Workspace.from_env(), args)
    except Refusal as error:
        print(f"init failed: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
