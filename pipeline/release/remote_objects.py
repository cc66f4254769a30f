"""Whether the remote can serve a release's LFS objects, and their repair where it cannot.

The remote is read as a user's clone reads it: a fresh scratch repository (LFS enabled for it
alone, with the push's own credentials) fetches exactly the objects and hashes every byte. Each
object is then good, missing (a copy of another size counts as missing: git-lfs sends it
again), or corrupt (its bytes do not hash to its name). git-lfs uploads a missing object but
never one the remote says it has, so a corrupt copy is removed first where the remote's storage
is a local path; on a server it cannot be, and the release is refused naming the object and the
repair.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.release.bundle import GOLDEN_NAME
from pipeline.release.git_repo import GitError, GitRepo
from pipeline.release.steps import ReleaseFailed, scratch_dir, upload_objects
from service.bundle import BATCHED_MODEL_NAME, LFS_POINTER_PREFIX, MODEL_NAME, sha256_of
from service.lfs_pull import refused_as_corrupt

LFS_TRACKED = (MODEL_NAME, BATCHED_MODEL_NAME, GOLDEN_NAME)
GOOD, MISSING, CORRUPT = "good", "missing", "corrupt"
# A scratch commit needs an author; the scratch repository is deleted after the check.
SCRATCH_COMMIT = (
    *("-c", "user.name=promote", "-c", "user.email=promote@localhost"),
    *("-c", "commit.gpgsign=false"),
)


@dataclass(frozen=True)
class LfsObject:
    """One released file as Git LFS stores it: its path, object id (sha256) and size."""

    path: str
    oid: str
    size: int

    def named(self) -> str:
        return f"{self.path}'s LFS object {self.oid[:12]}"


def pointer_of(path: str, text: str) -> LfsObject:
    """The object an LFS pointer names; ReleaseFailed for a plain blob."""
    if not text.encode().startswith(LFS_POINTER_PREFIX):
        raise ReleaseFailed(f"{path} was committed as a plain blob, not through Git LFS")
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    return LfsObject(path, fields["oid"].removeprefix("sha256:"), int(fields["size"]))


def release_objects(repo: GitRepo, commit: str, release_path: str) -> list[LfsObject]:
    """The LFS objects of the release `commit` holds (a release from before batched models
    has no batched model)."""
    tracked = [f"{release_path}/{name}" for name in LFS_TRACKED]
    paths = repo.run("ls-tree", "-r", "--name-only", commit, "--", *tracked).split()
    return [pointer_of(path, repo.run("show", f"{commit}:{path}")) for path in paths]


def file_objects(folder: Path, release_path: str) -> list[LfsObject]:
    """The LFS objects the files in `folder` would be released as (those that exist)."""
    return [
        LfsObject(
            f"{release_path}/{name}", sha256_of(folder / name), (folder / name).stat().st_size
        )
        for name in LFS_TRACKED
        if (folder / name).is_file()
    ]


def credentials_config(repo: GitRepo) -> list[tuple[str, str]]:
    """The repository's own http, credential and lfs settings (actions/checkout stores its token
    as http.<url>.extraheader), so verification reads the remote exactly as the push writes."""
    # Never lfs.storage: the scratch repository must not read the local objects it checks.
    pattern = r"^(http|credential)\.|^lfs\.url$|^lfs\..*\.access$"
    lines = repo.run("config", "--local", "--get-regexp", pattern, check=False)
    return [tuple(line.split(" ", 1)) for line in lines.splitlines() if " " in line]


def committed_lfs_config(repo: GitRepo) -> list[tuple[str, str]]:
    """The lfs.* settings of the repository's .lfsconfig (the working tree's, else HEAD's),
    which git-lfs reads after git's own config; never lfs.storage, as above."""
    source = ("--file", ".lfsconfig") if (repo.root / ".lfsconfig").is_file() else None
    if source is None and repo.run("ls-tree", "--name-only", "HEAD", "--", ".lfsconfig"):
        source = ("--blob", "HEAD:.lfsconfig")
    if source is None:
        return []
    lines = repo.run("config", *source, "--get-regexp", r"^lfs\.", check=False).splitlines()
    pairs = [tuple(line.split(" ", 1)) for line in lines if " " in line]
    return [(key, value) for key, value in pairs if key != "lfs.storage"]


def push_url(repo: GitRepo, remote: str) -> str:
    return repo.run("remote", "get-url", "--push", remote).strip()


def remote_states(
    repo: GitRepo, workspace: Workspace, remote: str, objects: list[LfsObject], timeout: float
) -> dict[str, str]:
    """{oid: good | missing | corrupt} as the remote serves each object to a fresh repository."""
    storage = remote_storage(repo, remote)
    if storage is not None and not storage.is_dir():
        # No object was ever uploaded there, and git-lfs's read would create the folder.
        return dict.fromkeys((item.oid for item in objects), MISSING)
    clone_dir = scratch_dir(workspace) / "verify"
    shutil.rmtree(clone_dir, ignore_errors=True)
    clone_dir.mkdir(parents=True)
    clone = GitRepo(clone_dir)
    clone.run("init", "-q")
    clone.run("lfs", "install", "--local")
    own = credentials_config(repo)
    for key, value in [*committed_lfs_config(repo), *own]:
        if (key, value) in own or key not in dict(own):  # git's own config wins, as for git-lfs
            clone.run("config", "--local", "--add", key, value)
    clone.run("remote", "add", "origin", push_url(repo, remote))
    # One commit of the pointers alone (no attributes, so they are stored as written): the
    # remote needs no ref to it, and the objects can only come from the remote.
    for item in objects:
        pointer = clone_dir / item.path
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(
            f"{LFS_POINTER_PREFIX.decode()}\noid sha256:{item.oid}\nsize {item.size}\n"
        )
    clone.run("add", "-A")
    clone.run(*SCRATCH_COMMIT, "commit", "-q", "--no-verify", "-m", "the release's LFS pointers")
    failure = ""
    try:
        clone.run("lfs", "fetch", "origin", "HEAD", timeout=timeout)
    except GitError as error:
        failure = str(error)
    states = {}
    for item in objects:
        stored = object_file(clone_dir / ".git" / "lfs" / "objects", item.oid)
        if stored.is_file() and sha256_of(stored) == item.oid:
            states[item.oid] = GOOD
        elif refused_as_corrupt(failure, item.oid):
            states[item.oid] = CORRUPT
        elif item.oid in failure or not failure:
            states[item.oid] = MISSING
        else:  # the fetch failed naming no object: the remote could not be read at all
            raise ReleaseFailed(f"could not read the LFS objects of {remote}: {failure}")
    shutil.rmtree(clone_dir, ignore_errors=True)
    return states


def remote_storage(repo: GitRepo, remote: str) -> Path | None:
    """The folder that holds the remote's LFS objects when git-lfs writes them directly to a
    repository on this machine (the remote itself, or the one a committed .lfsconfig's lfs.url
    names); None for a server."""
    settings = repo.run(
        "config", "--get-regexp", r"^lfs\.(push)?url$|^remote\..*\.lfs", check=False
    )
    if settings.strip():
        return None
    committed = dict(committed_lfs_config(repo))
    url = committed.get("lfs.pushurl") or committed.get("lfs.url") or push_url(repo, remote)
    git_dir = repo.local_git_dir(url)
    if git_dir is None:
        return None
    try:
        return media_dir(GitRepo(git_dir))
    except GitError:  # not a repository git can read here (another owner's, say)
        return None


def media_dir(repo: GitRepo) -> Path:
    """Where git-lfs keeps the repository's objects (its lfs.storage, else <git dir>/lfs),
    read without running git-lfs there: it would create its folders in a dry run."""
    git_dir = Path(repo.run("rev-parse", "--absolute-git-dir").strip())
    storage = repo.run("config", "--get", "lfs.storage", check=False).strip()
    return (git_dir / storage if storage else git_dir / "lfs") / "objects"


def object_file(media: Path, oid: str) -> Path:
    return media / oid[:2] / oid[2:4] / oid


def corrupt_object_fix(repo: GitRepo, remote: str, oid: str) -> str:
    """How to remove a corrupt object from a remote promote cannot write to itself."""
    return (
        f"delete LFS object {oid} on the server of {push_url(repo, remote)} (its LFS storage "
        "settings, or its administrator; GitHub has no per-object delete: ask its support), "
        "then run again: the upload sends it anew"
    )


def restore_local_object(repo: GitRepo, workspace: Workspace, item: LfsObject) -> None:
    """Make this repository's own copy of `item` good before it is uploaded again: a copy
    hard-linked with the remote's (git-lfs links objects on a local remote) is corrupt too."""
    local = object_file(media_dir(repo), item.oid)
    if local.is_file() and sha256_of(local) == item.oid:
        return
    sources = (repo.root / item.path, workspace.candidate_dir / Path(item.path).name)
    good = next((s for s in sources if s.is_file() and sha256_of(s) == item.oid), None)
    if good is None:
        raise ReleaseFailed(
            f"this repository holds no good copy of {item.named()} to upload again (nor "
            f"{item.path} nor the candidate has its bytes); run `git lfs push --object-id "
            f"<remote> {item.oid}` from a clone that holds it, then run again"
        )
    local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=local.parent, delete=False) as partial:
        partial.write(good.read_bytes())
    os.replace(partial.name, local)  # a new file: never written through a hard link


@dataclass(frozen=True)
class Repair:
    """An object the remote does not serve: uploaded again, its corrupt copy removed first."""

    item: LfsObject
    corrupt_copy: Path | None  # the remote's file whose bytes do not hash to its name

    def in_words(self, remote: str) -> str:
        if self.corrupt_copy is None:
            return f"upload {self.item.named()}, which {remote} does not hold"
        return (
            f"remove the corrupt copy of {self.item.named()} from {remote} "
            f"({self.corrupt_copy}: its bytes do not hash to its name) and upload it again"
        )


def repairs_needed(
    repo: GitRepo, workspace: Workspace, remote: str, objects: list[LfsObject], timeout: float
) -> list[Repair]:
    """What it takes for `remote` to serve every object with its own bytes; ReleaseFailed
    naming the object and the repair where a corrupt copy cannot be removed from here."""
    states = remote_states(repo, workspace, remote, objects, timeout)
    bad = [item for item in objects if states[item.oid] != GOOD]
    corrupt = [item for item in bad if states[item.oid] == CORRUPT]
    storage = remote_storage(repo, remote) if corrupt else None
    if corrupt and storage is None:
        raise ReleaseFailed(
            "; ".join(
                f"the remote {remote} holds a corrupt copy of {item.named()} (its bytes do not "
                "hash to its name), and git-lfs never re-uploads an object the remote says it "
                f"has; repair: {corrupt_object_fix(repo, remote, item.oid)}"
                for item in corrupt
            )
        )
    return [
        Repair(item, object_file(storage, item.oid) if item in corrupt else None) for item in bad
    ]


def ensure_remote_objects(
    repo: GitRepo, workspace: Workspace, remote: str, objects: list[LfsObject], timeout: float
) -> list[Repair]:
    """Check that `remote` serves every object with its own bytes and repair it where it does
    not (repairs_needed); the repairs made, each said as it is made."""
    repairs = repairs_needed(repo, workspace, remote, objects, timeout)
    if not repairs:
        return []
    for repair in repairs:
        restore_local_object(repo, workspace, repair.item)
    for repair in repairs:
        if repair.corrupt_copy is not None:
            repair.corrupt_copy.unlink(missing_ok=True)
            print(f"removed the corrupt copy of {repair.item.named()} ({repair.corrupt_copy})")
    upload_objects(repo, remote, [repair.item.oid for repair in repairs], timeout)
    states = remote_states(repo, workspace, remote, objects, timeout)
    still = [item for item in objects if states[item.oid] != GOOD]
    if still:
        raise ReleaseFailed(
            f"the remote {remote} does not serve "
            + ", ".join(f"{item.named()} ({states[item.oid]})" for item in still)
            + " even after uploading them again (fetched into a fresh repository to check)"
        )
    names = ", ".join(repair.item.named() for repair in repairs)
    print(f"uploaded {names} to {remote}; a fresh repository now fetches every byte of them")
    return repairs
