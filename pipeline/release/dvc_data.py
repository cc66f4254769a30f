"""DVC-tracked data as a release needs it: what a tag's .dvc files track and whether the local
DVC cache holds it, and the data put back in the working tree after a failed rollback."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.release.errors import PromotionRefused

# DVC's closing line when any object failed to download, an absent one included.
FETCH_TOTAL = "failed to fetch data from the cloud"
FETCH_FIX = (
    "install the remote's storage plugin and its credentials (`python -m pipeline.inputs.pull` "
    "does both, from the DVC_* environment variables), then run again"
)


@dataclass(frozen=True)
class Output:
    """A DVC output at a tag: the file that declares it, and what of its data the cache lacks."""

    dvc_file: str  # a .dvc file or a dvc.yaml, relative to the repository root
    missing: tuple[str, ...]  # objects (md5) absent from the local cache; .dvc files' only

    @property
    def from_stage(self) -> bool:
        """Written by a pipeline stage (dvc.yaml), which `dvc repro` runs again."""
        return not self.dvc_file.endswith(".dvc")


def run_dvc(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`dvc <args>` in `cwd`, with the project's own Python and DVC."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PromotionRefused(
            f"dvc {' '.join(args)} did not finish within {timeout:.0f} s"
        ) from None


def said(completed: subprocess.CompletedProcess) -> str:
    """What a DVC command said, on one line."""
    return " ".join((completed.stderr or completed.stdout).split())[-600:]


def fetch_failure(fetched) -> str | None:
    """DVC's last words when `dvc fetch` could not read the remote (no plugin, no credentials,
    no access); None when it did, even if the remote lacks some objects (checked after)."""
    if fetched.returncode == 0:
        return None
    errors = [line for line in fetched.stderr.splitlines() if line.startswith("ERROR")]
    absent = [line for line in errors if "No such file or directory" in line or FETCH_TOTAL in line]
    if errors and len(absent) == len(errors):
        return None
    words = errors[-3:] or (fetched.stderr or fetched.stdout).strip().splitlines()[-5:]
    return " ".join(" ".join(words).split()) or "no output"


def outputs_at(root: Path, tag: str) -> dict[str, Output]:
    """Every DVC output of the project at `root` as `tag` holds it, by path relative to the
    repository root; {} where `tag` is no DVC project."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        there = Repo(str(root), rev=tag)
    except NotDvcRepoError:
        return {}
    with there:
        try:
            here = Repo(str(root))
        except NotDvcRepoError:  # no DVC here any more: no cache holds anything
            here = None
        found = {}
        for out in there.index.outs:
            dvc_file = out.stage.dvcfile.path.lstrip("/")
            missing = ()
            if dvc_file.endswith(".dvc"):
                missing = tuple(missing_objects(here, out)) if here else ("(no DVC cache)",)
            # At a revision DVC's paths start at the repository root.
            found[out.fs_path.lstrip("/")] = Output(dvc_file, missing)
        if here:
            here.close()
    return found


def remote_problem(root: Path, name: str) -> str | None:
    """Why DVC cannot open its remote `name` here (its storage plugin is not installed, its
    settings are wrong), in DVC's words; None when it can. Reads nothing from the remote."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            repo.cloud.get_remote_odb(name)
    except (ImportError, DvcException) as error:
        return str(error)
    return None


def missing_objects(repo, out) -> list[str]:
    """The objects of `out`'s data (a directory's listing and its files) that `repo`'s local
    cache lacks."""
    from dvc.cachemgr import LEGACY_HASH_NAMES

    hash_info = out.hash_info
    if not hash_info or not hash_info.value:
        return ["(no hash recorded)"]
    cache = repo.cache.legacy if out.hash_name in LEGACY_HASH_NAMES else repo.cache.repo
    if not cache.exists(hash_info.value):
        return [hash_info.value]
    if not hash_info.isdir:
        return []
    listing = json.loads(Path(cache.oid_to_path(hash_info.value)).read_text())
    return [entry["md5"] for entry in listing if not cache.exists(entry["md5"])]


def changed_outs(dvc_file: Path) -> dict[str, str]:
    """{output: `dvc status`'s word for it (modified, deleted, not in cache)}; {} when the data
    is as `dvc_file` says and in the cache."""
    status = run_dvc(dvc_file.parent, "status", "--json", dvc_file.name)
    if status.returncode != 0:
        raise PromotionRefused(f"`dvc status {dvc_file.name}` failed: {said(status)}")
    return {
        out: state
        for entry in json.loads(status.stdout or "{}").get(dvc_file.name, [])
        if isinstance(entry, dict)
        for out, state in (entry.get("changed outs") or {}).items()
    }


def undo_data(repo_root: Path, checkouts: list[str], created: list[str]) -> None:
    """Put back the data a failed or killed rollback replaced: remove the outputs it created,
    then check out again the data of the .dvc files git has put back."""
    for path in created:
        target = repo_root / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for dvc_file in checkouts:
        path = repo_root / dvc_file
        if not path.is_file():
            continue
        # --force: whatever lies there now is the rollback's (the data was checked before).
        done = run_dvc(path.parent, "checkout", "--force", path.name)
        if done.returncode != 0:
            raise PromotionRefused(
                f"could not put back the data {dvc_file} tracks ({said(done)}); run `dvc "
                f"checkout --force {dvc_file}` once DVC works here, then run again"
            )
