"""params.yaml's sections as text blocks, so a rollback can put back the sections that built a
release exactly as they were (values and comments) and leave every other section alone."""

import re

import yaml

from pipeline.release.errors import PromotionRefused

SECTION_START = re.compile(r"^([A-Za-z_][\w-]*):")


def blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """[(section or None for the file's head, its lines)], each section with the comment lines
    directly above it."""
    result: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines(keepends=True):
        match = SECTION_START.match(line)
        if match:
            head = result[-1][1]
            comments = []
            while head and head[-1].startswith("#"):
                comments.insert(0, head.pop())
            result.append((match.group(1), [*comments, line]))
        else:
            result[-1][1].append(line)
    return result


def with_sections(current: str, source: str, sections: list[str]) -> str:
    """`current` with `sections` replaced by (or added from, or removed as in) `source`."""
    wanted = {name: lines for name, lines in blocks(source) if name in sections}
    out, seen = [], set()
    for name, lines in blocks(current):
        if name in sections:
            seen.add(name)
            out += wanted.get(name, [])
        else:
            out += lines
    for name in sections:
        if name not in seen and name in wanted:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out += wanted[name]
    text = "".join(out)
    before, after = yaml.safe_load(source) or {}, yaml.safe_load(text) or {}
    for name in sections:  # a layout this parser misreads must not go unnoticed
        if before.get(name) != after.get(name):
            raise PromotionRefused(f"could not restore params.yaml's {name!r} section as text")
    return text


def sections_that_built(release_manifest: dict, dvc_locks: list[str]) -> list[str]:
    """The params.yaml sections a release's stages read: those its manifest records and those
    every dvc.lock of that commit lists."""
    names = set(release_manifest.get("params", {}))
    for lock_text in dvc_locks:
        for stage in (yaml.safe_load(lock_text) or {}).get("stages", {}).values():
            for key in (stage.get("params") or {}).get("params.yaml", {}):
                names.add(key.split(".", 1)[0])
    return sorted(names)
