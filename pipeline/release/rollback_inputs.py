"""The model's inputs as a release tag holds them, for a rollback: each file params.yaml's
`inputs` names at the tag, put back the way the tag tracks it (a file in git, or the .dvc file
that tracks it with its data from the local DVC cache, else the DVC remote), so that the next
`dvc repro` rebuilds the tag's model. Every check runs before anything changes, and a failed or
killed rollback puts the data back as the .dvc files it restores say (dvc_data.undo_data).
"""

import os
from dataclasses import dataclass

import yaml

from pipeline.inputs.files import InputPaths
from pipeline.params.reading import read_section
from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace
from pipeline.release.dvc_data import (
    FETCH_FIX,
    Output,
    changed_outs,
    fetch_failure,
    outputs_at,
    remote_problem,
    run_dvc,
    said,
)
from pipeline.release.errors import PromotionRefused
from pipeline.release.git_repo import GitRepo
from pipeline.release.transaction import object_id
from service.errors import Refusal

# What to do about data that is not as its .dvc file says, by `dvc status`'s word for it.
STATUS_FIXES = {
    "modified": "keep the change (`dvc add {out}`, then commit {dvc_file}) or drop it "
    "(`dvc checkout {dvc_file}`)",
    "not in cache": "`dvc commit {dvc_file}` puts it in the cache (or `dvc pull {dvc_file}`)",
    "deleted": "`dvc checkout {dvc_file}` or `dvc pull {dvc_file}` brings it back",
}


@dataclass(frozen=True)
class TrackedData:
    """A .dvc file the rollback puts back as at the tag, and the data it tracks there."""

    dvc_file: str  # paths relative to the repository root
    outs: tuple[str, ...]
    at_head: bool  # HEAD has this .dvc file: an undo checks its data out again
    created: tuple[str, ...]  # outputs absent from the working tree now: an undo removes them
    cached: bool  # the local DVC cache holds all of the tag's data
    ignore_files: tuple[str, ...]  # .gitignore files that get an entry for a created output


@dataclass(frozen=True)
class InputsRestore:
    """What of the model's inputs a rollback to `tag` rewrites; empty when HEAD has them."""

    tag: str
    git_files: tuple[str, ...] = ()
    tracked: tuple[TrackedData, ...] = ()
    rebuilt: tuple[str, ...] = ()  # pipeline stages' outputs, which `dvc repro` rebuilds
    unchanged: tuple[str, ...] = ()  # inputs HEAD tracks as the tag does (the file or .dvc file)
    dvc_remote: str = ""

    def from_tag(self) -> list[str]:
        """The paths `git checkout <tag> --` restores."""
        return [*self.git_files, *(data.dvc_file for data in self.tracked)]

    def written(self) -> list[str]:
        """Every path git sees that the rollback rewrites (the journal puts them back)."""
        return [*self.from_tag(), *(path for data in self.tracked for path in data.ignore_files)]

    def describe(self) -> list[str]:
        """One line per restored input, for the dry run and the rollback's last words."""
        lines = [f"{path} (a file in git)" for path in self.git_files]
        for data in self.tracked:
            source = "the local DVC cache" if data.cached else f"DVC remote {self.dvc_remote!r}"
            outs = ", ".join(f"{out}/" for out in data.outs)
            lines.append(f"{data.dvc_file} and the data it tracks, {outs} (from {source})")
        return lines

    def left(self) -> str:
        """The inputs the rollback leaves to others, in words; "" when none."""
        parts = []
        if self.unchanged:
            parts.append(f"tracked as at {self.tag} already: {', '.join(self.unchanged)}")
        if self.rebuilt:
            parts.append(f"`dvc repro` rebuilds {', '.join(self.rebuilt)}")
        which = "the model's other inputs" if self.written() else "the model's inputs"
        return f"{which}: {'; '.join(parts)}" if parts else ""


def covering(outputs: dict[str, Output], path: str) -> str | None:
    """The DVC output that is `path` or holds it."""
    return next((out for out in outputs if path == out or path.startswith(out + "/")), None)


def inputs_at(repo: GitRepo, workspace: Workspace, tag: str, params_text: str) -> InputsRestore:
    """What of the inputs `tag`'s params.yaml names differs from HEAD, and how to put it back;
    a refusal naming the file and the fix when it cannot be put back whole."""
    inputs = (yaml.safe_load(params_text) or {}).get("inputs")
    if not inputs:
        return InputsRestore(tag)
    try:
        section = read_section(InputsParams, inputs, "inputs")
        files = InputPaths.from_params(section, workspace).files()
    except Refusal as error:
        raise PromotionRefused(f"{tag}'s params.yaml: {error}") from None
    outputs: dict[str, Output] | None = None
    git_files, dvc_files, rebuilt, unchanged = [], {}, set(), set()
    for key, path in files.items():
        rel = os.path.relpath(path, repo.root)
        if object_id(repo, tag, rel):
            if object_id(repo, "HEAD", rel) != object_id(repo, tag, rel):
                git_files.append(checked_git_file(repo, tag, rel))
            else:
                unchanged.add(rel)
            continue
        outputs = outputs_at(workspace.root, tag) if outputs is None else outputs
        out = covering(outputs, rel)
        if out is None:
            raise PromotionRefused(
                f"{tag}'s inputs.{key} {rel} is tracked by neither git nor DVC at {tag}, so its "
                "model cannot be rebuilt from the tag; roll back to a release whose inputs are "
                "tracked (python -m pipeline.init tracks them)"
            )
        dvc_file = outputs[out].dvc_file
        if outputs[out].from_stage:
            rebuilt.add(f"{out} (an output of {dvc_file})")
        elif object_id(repo, "HEAD", dvc_file) != object_id(repo, tag, dvc_file):
            dvc_files[dvc_file] = [
                o for o, output in outputs.items() if output.dvc_file == dvc_file
            ]
        else:
            unchanged.add(dvc_file)
    tracked = tuple(
        checked_data(repo, tag, dvc_file, outs, outputs) for dvc_file, outs in dvc_files.items()
    )
    remote = ""
    if any(not data.cached for data in tracked):
        remote = run_dvc(workspace.root, "remote", "default").stdout.strip()
        if not remote:
            lacking = ", ".join(data.dvc_file for data in tracked if not data.cached)
            raise PromotionRefused(
                f"the local DVC cache lacks {tag}'s data of {lacking}, and this project has no "
                "default DVC remote to pull it from: `dvc remote add -d <name> <url>` naming the "
                "remote that holds it (or roll back where that data is cached), then run again"
            )
        if problem := remote_problem(workspace.root, remote):
            raise PromotionRefused(
                f"`dvc fetch` from DVC remote {remote!r} cannot run: {problem}; {FETCH_FIX}"
            )
    return InputsRestore(
        tag, tuple(git_files), tracked, tuple(sorted(rebuilt)), tuple(sorted(unchanged)), remote
    )


def checked_git_file(repo: GitRepo, tag: str, rel: str) -> str:
    """`rel`, unless a file HEAD does not track lies there, which a checkout would overwrite."""
    if not object_id(repo, "HEAD", rel) and (repo.root / rel).exists():
        raise PromotionRefused(
            f"{tag} holds {rel} in git, and a file git does not track is there now (the "
            "rollback would overwrite it): move it aside, then run again"
        )
    return rel


def head_outs(repo: GitRepo, dvc_file: str) -> list[str]:
    """The outputs HEAD's `dvc_file` tracks, relative to the repository root; [] if none."""
    text = repo.run("show", f"HEAD:{dvc_file}") if object_id(repo, "HEAD", dvc_file) else ""
    base = os.path.dirname(dvc_file)
    outs = (yaml.safe_load(text) or {}).get("outs") or []
    return [os.path.normpath(os.path.join(base, entry["path"])) for entry in outs]


def checked_data(repo: GitRepo, tag: str, dvc_file: str, outs: list[str], outputs) -> TrackedData:
    """`dvc_file` as a rollback to `tag` restores it; refused when the data there now could not
    be put back after a failure, or lies where git, or nothing, tracks it."""
    at_head = bool(object_id(repo, "HEAD", dvc_file))
    tracked_now = head_outs(repo, dvc_file)
    for out in outs:
        if repo.run("ls-files", "--", out).strip():
            raise PromotionRefused(
                f"git tracks {out} now, while {tag} tracks it with {dvc_file}: `git rm -r "
                f"--cached {out}` and commit, then run again"
            )
        if (repo.root / out).exists() and out not in tracked_now:
            raise PromotionRefused(
                f"{out} is here but HEAD's {dvc_file} does not track it, and the rollback would "
                f"replace it with {tag}'s data: move it aside, then run again"
            )
    if at_head:
        changes = changed_outs(repo.root / dvc_file)
        if changes:
            out, state = next(iter(changes.items()))
            fix = STATUS_FIXES.get(state, "see `dvc status`").format(out=out, dvc_file=dvc_file)
            raise PromotionRefused(
                f"{out} is not as {dvc_file} says ({state}), and a rollback must be able to put "
                f"it back if it fails: {fix}; then run again"
            )
    created = tuple(out for out in outs if not (repo.root / out).exists())
    ignore_files = sorted(
        {
            os.path.join(os.path.dirname(out), ".gitignore")
            for out in created
            if not ignored(repo, out)
        }
    )
    for path in ignore_files:
        if (repo.root / path).exists() and not object_id(repo, "HEAD", path):
            raise PromotionRefused(
                f"{path} is not in git, and the rollback adds to it: commit it, then run again"
            )
    cached = not any(outputs[out].missing for out in outs)
    return TrackedData(dvc_file, tuple(outs), at_head, created, cached, tuple(ignore_files))


def ignored(repo: GitRepo, path: str) -> bool:
    """Whether git ignores `path` (`dvc add` makes it ignore the data DVC tracks)."""
    return bool(repo.run("check-ignore", "--no-index", "--", path, check=False).strip())


def dvc_targets(repo: GitRepo, workspace: Workspace, tracked) -> list[str]:
    return [os.path.relpath(repo.root / data.dvc_file, workspace.root) for data in tracked]


def fetch_data(repo: GitRepo, workspace: Workspace, restore: InputsRestore) -> None:
    """The tag's data the local DVC cache lacks, fetched into it from the DVC remote (the .dvc
    files are the tag's by now); a refusal, with no data changed, when the fetch fails or the
    remote lacks it too."""
    pulls = [data for data in restore.tracked if not data.cached]
    if not pulls:
        return
    remote = restore.dvc_remote
    targets = dvc_targets(repo, workspace, pulls)
    fetched = run_dvc(workspace.root, "fetch", "--remote", remote, *targets)
    if failure := fetch_failure(fetched):
        raise PromotionRefused(
            f"`dvc fetch` from DVC remote {remote!r} failed: {failure}; {FETCH_FIX}"
        )
    pulled = {data.dvc_file for data in pulls}
    lacking = [
        (out, output)
        for out, output in outputs_at(workspace.root, restore.tag).items()
        if output.dvc_file in pulled and output.missing
    ]
    if lacking:
        out, output = lacking[0]
        raise PromotionRefused(
            f"neither the local DVC cache nor DVC remote {remote!r} holds {restore.tag}'s {out} "
            f"({output.dvc_file}: {len(output.missing)} object(s) missing, e.g. "
            f"{output.missing[0]}; dvc fetch: {said(fetched) or 'no output'}); `dvc push "
            f"{output.dvc_file}` from a checkout of {restore.tag} whose DVC cache holds it, then "
            "run again"
        )


def restore_data(repo: GitRepo, workspace: Workspace, restore: InputsRestore) -> list[str]:
    """After `git checkout <tag> -- restore.from_tag()`: the tag's data in the working tree,
    fetched from the DVC remote first where the local cache lacks it (fetch_data); the
    .gitignore files it wrote."""
    if not restore.tracked:
        return []
    fetch_data(repo, workspace, restore)
    checked_out = run_dvc(
        workspace.root, "checkout", *dvc_targets(repo, workspace, restore.tracked)
    )
    if checked_out.returncode != 0:
        raise PromotionRefused(
            f"`dvc checkout` of {restore.tag}'s data failed: {said(checked_out)}"
        )
    written = []
    for data in restore.tracked:
        for out in data.created:
            if ignored(repo, out):
                continue
            ignore_file = repo.root / os.path.dirname(out) / ".gitignore"
            lines = ignore_file.read_text().splitlines() if ignore_file.exists() else []
            ignore_file.write_text("\n".join([*lines, "/" + os.path.basename(out)]) + "\n")
            written.append(os.path.relpath(ignore_file, repo.root))
    return written
