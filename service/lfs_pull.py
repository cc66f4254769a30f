"""Why a model file is still a Git LFS pointer, from what the build's `git lfs pull` recorded.

render.yaml's buildCommand writes git-lfs's own output to build/lfs-pull.log (LFS_PULL_LOG)
and ends it with PULLED when the pull succeeded. git-lfs checks every object it downloads
against its name, so a corrupt copy on the git remote (refused_as_corrupt) or a missing one
(its oid named) fails the pull and leaves the pointer in place; with no record at
all, the build never pulled.
"""

from pathlib import Path

from service.bundle import BundleError, LfsPointer

DEFAULT_RECORD = "build/lfs-pull.log"
# /api/health/'s `fault` when the bundle cannot be served: BundleError's kinds, a pointer's
# diagnosis below, and internal_error when loading it failed on a bug of the service's own.
FAULTS = (
    "bundle",
    "internal_error",
    "model_file_corrupt",
    "lfs_object_corrupt",
    "lfs_object_missing",
    "lfs_pull_failed",
    "lfs_not_fetched",
    "lfs_not_pulled",
)
PULLED = "git lfs pull: ok"
# How the release's own repair is named to whoever reads the health check or the smoke check.
REPAIR = (
    "run `python -m pipeline.promote` where the release was made: it checks the remote's LFS "
    "objects and uploads them again (docs/releasing.md), then deploy again"
)


def refused_as_corrupt(git_lfs_output: str, oid: str) -> bool:
    """Whether git-lfs refused object `oid` because its bytes do not hash to its name: the
    local-path transfer says "invalid hash ..., expected <oid>", HTTP downloads "expected OID
    <oid>, got ..."."""
    said = git_lfs_output.lower()
    return f"expected oid {oid}" in said or ("invalid hash" in said and f"expected {oid}" in said)


def read_record(record_path: Path | None) -> str | None:
    """The build's record of its pull; None when the build left none."""
    try:
        return record_path.read_text(encoding="utf-8", errors="replace") if record_path else None
    except OSError:
        return None


def pointer_diagnosis(pointer: LfsPointer, record: str | None) -> tuple[str, str]:
    """(fault, reason) for a model file left as an LFS pointer, from the build's record."""
    name, oid = pointer.file_name, pointer.oid
    said = f"{name} is a Git LFS pointer"
    if record is None:
        return "lfs_not_pulled", (
            f"{said}: the build did not pull Git LFS objects (it left no record of a `git lfs "
            "pull`); the build command must run `git lfs pull`, as render.yaml's does"
        )
    if refused_as_corrupt(record, oid):
        return "lfs_object_corrupt", (
            f"{said}: the LFS object is corrupt: the build's `git lfs pull` refused object "
            f"{oid[:12]} because the git remote's copy does not hash to its name; {REPAIR}"
        )
    if oid in record:
        return "lfs_object_missing", (
            f"{said}: the git remote does not hold its LFS object {oid[:12]} (the build's `git "
            f"lfs pull` could not fetch it); {REPAIR}"
        )
    lines = [line.strip() for line in record.splitlines() if line.strip()]
    if PULLED in lines:
        return "lfs_not_fetched", (
            f"{said}: the build's `git lfs pull` succeeded but did not fetch object {oid[:12]} "
            "(an lfs.fetchexclude setting, or a pull before this release); pull it in the build"
        )
    # git-lfs's own words name the remote's URL: they stay in the build log, never public.
    return "lfs_pull_failed", (
        f"{said}: the build's `git lfs pull` failed (its own words are in the build log and "
        "in LFS_PULL_LOG); fix what they say, then deploy again"
    )


def diagnosed(error: BundleError, record_path: Path | None) -> tuple[str, str]:
    """(fault, reason) for a bundle that cannot be served."""
    if isinstance(error, LfsPointer):
        return pointer_diagnosis(error, read_record(record_path))
    return error.fault, str(error)
