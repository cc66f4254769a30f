"""Lock files a killed run leaves behind, removed only when no live process holds them.

git creates `<name>.lock` beside what it changes (the index, HEAD, config, packed-refs, each
ref) and removes it when done; a git killed meanwhile leaves it, and every later git that needs
it fails ("Unable to create '....lock': File exists", "could not lock config file"). Such a lock
is held exactly while a git process works in the repository.

DVC keeps two in `.dvc/tmp/`. `lock`, the repository lock, is an flock on the file: the kernel
drops it when its holder dies, so the file a killed DVC leaves blocks nothing (with
`core.hardlink_lock` it is a hard link instead, which does block, and is held while a DVC
command works here). `rwlock` records, as JSON, which process reads or writes which stage paths;
DVC rewrites it in place under the flock of `rwlock.lock`, so a DVC killed while rewriting it
leaves it empty or cut short, and every later DVC command fails ("Unable to read RWLock-file
... JSON structure is corrupted"). An entry whose process is gone DVC drops itself, with a
warning; recovery drops it first, saying so.
"""

import contextlib
import fcntl
import json
import os
from pathlib import Path

from pipeline.paths import Workspace
from pipeline.release.git_repo import GitRepo
from pipeline.release.lock import LOCK_NAME
from pipeline.release.orphans import processes_in, processes_with_open

DVC_LOCKS = ("lock", "rwlock.lock")
RWLOCK_NAME = "rwlock"


def runs_git(argv: list[str]) -> bool:
    return Path(argv[0]).name.startswith("git")


def runs_dvc(argv: list[str]) -> bool:
    """`dvc ...` (its script, under whichever python) or `python -m dvc ...`."""
    return "dvc" in {Path(part).name for part in argv[:2]} or argv[1:3] == ["-m", "dvc"]


def holders(folder: Path, wanted, what: str) -> str:
    """ "" when no such process works in `folder`; else who does, in words."""
    found = processes_in(folder, wanted)
    return f"{what} works there (pid {found[0][0]}: {found[0][1][:80]})" if found else ""


def lock_holder(locks: list[Path], trees: list[Path]) -> str:
    """ "" when no live process may hold `locks`; else who may, in words: a process that has
    one open, whatever the program (DVC's own git code writes .git/index.lock inside its Python
    process, with the file open until it is renamed), or a git command working in one of
    `trees`. A DVC command is not counted by its name: DVC's update and analytics daemons keep
    a finished command's name for seconds after it, holding nothing."""
    if opened := processes_with_open(locks):
        pid, command, path = opened[0]
        return f"pid {pid} ({command[:80]}) has {path.name} open"
    busy = next((found for tree in trees if (found := holders(tree, runs_git, "git"))), "")
    return f"{busy}, and may hold it" if busy else ""


def git_lock_files(repo: GitRepo) -> tuple[list[Path], list[Path]]:
    """The lock files git may have left: this working tree's own (its index and HEAD, in a
    linked working tree), and those every working tree shares (config, packed-refs, refs)."""
    git_dir = Path(repo.run("rev-parse", "--absolute-git-dir").strip()).resolve()
    common = repo.run("rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    common_dir = Path(common).resolve()
    own = sorted(git_dir.glob("*.lock")) if git_dir != common_dir else []
    shared = {*common_dir.glob("*.lock"), *(common_dir / "refs").glob("**/*.lock")}
    return own, sorted(path for path in shared if path.name != LOCK_NAME)


def worktrees(repo: GitRepo) -> list[Path]:
    """Every working tree of the repository (they share its refs and config)."""
    listed = repo.run("worktree", "list", "--porcelain").splitlines()
    return [Path(line.split(" ", 1)[1]) for line in listed if line.startswith("worktree ")]


def clear_git_locks(repo: GitRepo) -> list[str]:
    """Remove git's lock files where no git process works that may hold them; in words."""
    own, shared = git_lock_files(repo)
    messages, removed = [], []
    for locks, trees in ((own, [repo.root]), (shared, worktrees(repo))):
        if not locks:
            continue
        busy = lock_holder(locks, trees)
        if busy:
            names = ", ".join(os.path.relpath(path, repo.root) for path in locks)
            messages.append(f"left {names} in place: {busy}")
            continue
        for path in locks:
            path.unlink(missing_ok=True)
        removed += locks
    if removed:
        names = ", ".join(os.path.relpath(path, repo.root) for path in sorted(removed))
        messages.insert(
            0,
            f"removed {names}, left by a git command that was killed (no git process works in "
            "the repository, and no process has them open)",
        )
    return messages


def dvc_tmp_dir(workspace: Workspace, repo: GitRepo) -> Path | None:
    """`.dvc/tmp` of the DVC project the workspace is in (as DVC finds it), if there is one."""
    for folder in (workspace.root, *workspace.root.parents):
        if (folder / ".dvc").is_dir():
            return folder / ".dvc" / "tmp"
        if folder == repo.root:
            return None
    return None


def uses_hardlink_locks(tmp_dir: Path) -> bool:
    """DVC's `core.hardlink_lock`, read by DVC's own config loader (every level of config)."""
    from dvc.config import Config  # imported here: only a DVC project needs it

    return bool(Config(dvc_dir=str(tmp_dir.parent))["core"].get("hardlink_lock", False))


def remove_hardlink_lock(path: Path) -> None:
    """Remove a hard-link lock and its claim file (the other name of the same file)."""
    inode = path.stat().st_ino
    for other in path.parent.iterdir():
        with contextlib.suppress(OSError):
            if other != path and other.stat().st_ino == inode:
                other.unlink()
    path.unlink()


def holder_of(path: Path) -> str:
    """Who holds an flock DVC took: the pid it wrote into the file, when it did."""
    text = path.read_text(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "a process"


@contextlib.contextmanager
def flocks_taken(paths: list[Path]):
    """Take the flock of each existing path as DVC does, without waiting; yields the first path
    that another process holds, or None when all were free (held for the block)."""
    with contextlib.ExitStack() as held:
        for path in paths:
            try:
                handle = held.enter_context(open(path))
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield path
                return
        yield None


def well_formed(lock) -> bool:
    """Whether DVC's own schema takes this rwlock: {"read": {path: [info]}, "write": {path:
    info}}, info = {"pid": int, "cmd": str}."""

    def is_info(info) -> bool:
        return isinstance(info, dict) and isinstance(info.get("pid"), int)

    if not isinstance(lock, dict) or not set(lock) <= {"read", "write"}:
        return False
    writers, readers = lock.get("write", {}), lock.get("read", {})
    return (
        isinstance(writers, dict)
        and isinstance(readers, dict)
        and all(is_info(info) for info in writers.values())
        and all(isinstance(infos, list) and all(map(is_info, infos)) for infos in readers.values())
    )


def rwlock_problem(text: str) -> str | None:
    """Why DVC cannot read this rwlock; None when it can."""
    if not text.strip():
        return "empty"
    try:
        lock = json.loads(text)
    except json.JSONDecodeError:
        return "not valid JSON (cut short)"
    return None if well_formed(lock) else "not in DVC's format"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def without_dead_holders(lock: dict) -> tuple[dict, list[str]]:
    """The rwlock without the entries of processes that are gone, and those entries in words."""
    gone: dict[tuple[int, str], int] = {}

    def alive(info: dict) -> bool:
        if pid_alive(info["pid"]):
            return True
        key = (info["pid"], str(info.get("cmd", "")))
        gone[key] = gone.get(key, 0) + 1
        return False

    kept: dict = {"read": {}, "write": {}}
    for path, info in lock.get("write", {}).items():
        if alive(info):
            kept["write"][path] = info
    for path, readers in lock.get("read", {}).items():
        if living := [info for info in readers if alive(info)]:
            kept["read"][path] = living
    words = [f"pid {pid} ({cmd[:80]}) on {count} path(s)" for (pid, cmd), count in gone.items()]
    return {mode: entries for mode, entries in kept.items() if entries}, words


def clear_dvc_locks(workspace: Workspace, repo: GitRepo) -> list[str]:
    """Repair DVC's lock files when no DVC process works in the project; what was done."""
    tmp_dir = dvc_tmp_dir(workspace, repo)
    if tmp_dir is None or not tmp_dir.is_dir():
        return []
    project = tmp_dir.parent.parent
    rwlock_path = tmp_dir / RWLOCK_NAME
    locks = [tmp_dir / name for name in DVC_LOCKS]
    # Under core.hardlink_lock a lock exists exactly while it is held (its holder removes it);
    # otherwise the file stays and the flock on it is what holds.
    hardlinked = [path for path in locks if path.is_file()] if uses_hardlink_locks(tmp_dir) else []
    flocked = [] if hardlinked else locks
    with flocks_taken(flocked) as held:
        busy = f"{holder_of(held)} holds {held.relative_to(project)}" if held else ""
        busy = busy or holders(project, runs_dvc, "DVC")
        text = rwlock_path.read_text(errors="replace") if rwlock_path.is_file() else None
        problem = rwlock_problem(text) if text is not None else None
        stale = [*hardlinked, *([rwlock_path] if problem else [])]
        if busy:
            names = ", ".join(str(path.relative_to(project)) for path in stale)
            return [f"left {names} in place: {busy}"] if stale else []
        done = []
        if hardlinked:
            for path in hardlinked:
                remove_hardlink_lock(path)
            names = ", ".join(str(path.relative_to(project)) for path in hardlinked)
            done.append(
                f"removed {names}, left by a DVC command that was killed (DVC's locks under "
                "core.hardlink_lock; no DVC process works here)"
            )
        if problem:
            rwlock_path.unlink()
            done.append(
                f"removed {rwlock_path.relative_to(project)}: it was {problem}, as a DVC command "
                "killed while rewriting it leaves it (no DVC process works here)"
            )
        elif text is not None:
            kept, gone = without_dead_holders(json.loads(text))
            if gone:
                partial = rwlock_path.with_name(f"{RWLOCK_NAME}.partial")
                partial.write_text(json.dumps(kept))
                os.replace(partial, rwlock_path)
                done.append(
                    f"removed from {rwlock_path.relative_to(project)} the locks of processes "
                    f"that are gone: {'; '.join(gone)}"
                )
        return done


def clear_stale_locks(repo: GitRepo, workspace: Workspace) -> list[str]:
    """Every lock file a killed run left, removed where no live process holds it; in words."""
    return [*clear_git_locks(repo), *clear_dvc_locks(workspace, repo)]
