"""The README and docs/ as a reader meets them: a short front door, links that resolve, figures
that match the reports they came from, and text about what the code does, not its history."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV
from pipeline.summary import NEXT_STEPS

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(?P<title>.+?) *$", re.M)
# Words that narrate the project's past instead of describing the code, and commit ids to
# check out (a bracketed letter keeps this file from matching itself).
HISTORY = re.compile(
    r"\bissues? #?\d|\bissu[e]'s\b|\b(before|after) (this|a|the) chang[e]|the old choic[e]"
    r"|\bwe use[d] to\b|\bused t[o] be\b|\bpreviousl[y]\b|\bformerl[y]\b|\boriginall[y]\b"
    r"|\buntil (now|recentl[y])\b|\bin the pas[t]\b|\bhas been (change[d]|rename[d])\b"
    r"|(?-i:#\s*Befor[e]:)|\b[0-9a-f]{7,40}\^|\bgit (checkout|worktree add)\b.*\b[0-9a-f]{7,40}\b",
    re.I,
)


def prose(path: Path) -> str:
    """The page without its fenced code blocks (a `#` in code is no heading, a link no link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    title = re.sub(r"<[^>]+>", "", title).strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(match["title"]) for match in HEADING.finditer(prose(path))}


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for page in (
        "pipeline",
        "bring-your-own-model",
        "gate",
        "service",
        "releasing",
        "report",
        "benchmarks",
        "known-limits",
    ):
        assert f"](docs/{page}.md)" in readme, f"the README does not link docs/{page}.md"
    assert ". .venv/bin/activate" in readme and "New > Blueprint" in (
        REPO_ROOT / "docs" / "releasing.md"
    ).read_text(encoding="utf-8")


def test_the_readme_shows_the_next_steps_make_demo_prints():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("`make demo` prints the next steps", 1)[1].split("```sh\n", 1)[1]
    commands = [line.split("  #")[0].strip() for line in block.split("```", 1)[0].splitlines()]
    printed = " ".join(NEXT_STEPS.replace("\\\n", " ").split())
    assert commands and all(" ".join(command.split()) in printed for command in commands)


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for match in LINK.finditer(prose(page)):
        target = match["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        file_part, _, fragment = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert broken == []


def test_every_figure_in_the_docs_matches_the_report_it_came_from():
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.report.docs", "--check"],
        cwd=REPO_ROOT,
        env={**os.environ, WORKSPACE_ENV: str(REPO_ROOT)},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The reports on disk, or the committed ones where this machine's own run rewrote reports/.
    assert "the docs match the " in completed.stdout


@pytest.mark.parametrize(
    "line, narrates_history",
    [
        ("# Bef" + "ore: the worker took 370 MB", True),
        ("the service bef" + "ore a change", True),
        ("git worktree add ../x ccc4" + "a02^1", True),
        ("we us" + "ed to parse it whole", True),
        ("fixed in iss" + "ue #29", True),
        ("# Before the group is stopped, its log is read", False),
        ("CPU pressure before: some avg10=0.13", False),
        ("a worker that died and was replaced", False),
    ],
)
def test_the_history_words_are_told_from_descriptions(line, narrates_history):
    assert bool(HISTORY.search(line)) is narrates_history


def test_the_text_describes_the_code_not_its_history():
    tracked = subprocess.run(
        ["git", "ls-files", "*.md", "*.py", "*.yaml", "*.yml", "*.toml", "Makefile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        if (REPO_ROOT / name).is_file()
        for number, line in enumerate((REPO_ROOT / name).read_text("utf-8").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert found == []
