"""Where `python -m pipeline.init` copied each input from, kept beside the copies in
`<inputs.folder>/sources.json`: a refusal about a copy names the user's own file and the init
command that brings a fixed one in, rather than only the copy in the inputs folder."""

import json
import shlex
from pathlib import Path

from service.bundle import sha256_of

SOURCES_NAME = "sources.json"


def write_sources(folder: Path, sources: dict[str, Path], init_argv: list[str]) -> None:
    """Record in `folder` the source of each copy there (by the copy's name, with the copy's
    sha256) and the init command that made them."""
    record = {
        "init_command": init_argv,
        "files": {
            name: {"source": str(source), "sha256": sha256_of(folder / name)}
            for name, source in sources.items()
        },
    }
    (folder / SOURCES_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _record(folder: Path) -> dict:
    try:
        record = json.loads((folder / SOURCES_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def source_of(copy: Path) -> Path | None:
    """The user's file `copy` was copied from by init, if `copy` is still that copy (its
    sha256 unchanged); None for a file init did not bring in or one edited since."""
    files = _record(copy.parent).get("files")
    entry = files.get(copy.name) if isinstance(files, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
        return None
    if not copy.is_file() or sha256_of(copy) != entry.get("sha256"):
        return None
    return Path(entry["source"])


def init_command(copy: Path) -> str | None:
    """The `python -m pipeline.init ...` command that brought `copy` in, for the user to run
    again once they fixed their own file; None when init did not bring it in."""
    argv = _record(copy.parent).get("init_command")
    if source_of(copy) is None or not isinstance(argv, list):
        return None
    return shlex.join(argv)
